"""Client calls for schedules, webhooks, triggers (docs/automation.md) and accounts."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from dizest_api.client.base import Base
from dizest_api.client.errors import ApiError


class AutomationMixin(Base):
    """Schedules, webhooks and triggers (docs/automation.md)."""

    def schedules(self, workflow_id: str | None = None) -> list[dict[str, Any]]:
        """Your schedules (admins: all), or those of one workflow."""
        path = (
            "/schedules" if workflow_id is None else f"/workflows/{self._q(workflow_id)}/schedules"
        )
        return list(self.request("GET", path)["items"])

    def schedule(self, schedule_id: str, history: int = 20) -> dict[str, Any]:
        """A schedule with its latest tick records (`history`: run ids, errors, skips)."""
        answer: dict[str, Any] = self.request("GET", f"/schedules/{self._q(schedule_id)}?limit={int(history)}")  # fmt: skip
        return answer

    def add_schedule(self, workflow_id: str, cron: str, **fields: Any) -> dict[str, Any]:
        """Run `workflow_id` on `cron` as you; fields: timezone, inputs, options, enabled,
        catchup ("once" or "skip")."""
        path = f"/workflows/{self._q(workflow_id)}/schedules"
        answer: dict[str, Any] = self.request("POST", path, {"cron": cron, **fields})
        return answer

    def update_schedule(self, schedule_id: str, **changes: Any) -> dict[str, Any]:
        """Change a schedule (e.g. `enabled=False`)."""
        answer: dict[str, Any] = self.request(
            "PATCH", f"/schedules/{self._q(schedule_id)}", changes
        )
        return answer

    def remove_schedule(self, schedule_id: str) -> None:
        self.request("DELETE", f"/schedules/{self._q(schedule_id)}")

    def hooks(self) -> list[dict[str, Any]]:
        """Your webhooks."""
        return list(self.request("GET", "/hooks")["items"])

    def hook(self, hook_id: str, deliveries: int = 20) -> dict[str, Any]:
        """A webhook with its latest deliveries (status codes, attempts)."""
        answer: dict[str, Any] = self.request("GET", f"/hooks/{self._q(hook_id)}?limit={int(deliveries)}")  # fmt: skip
        return answer

    def add_hook(self, url: str, workflow_id: str | None = None) -> dict[str, Any]:
        """Call `url` when your runs (of `workflow_id` only, if given) end; the answer holds the
        signing `secret`, shown this once."""
        body = {"url": url} | ({"workflow_id": workflow_id} if workflow_id else {})
        answer: dict[str, Any] = self.request("POST", "/hooks", body)
        return answer

    def remove_hook(self, hook_id: str) -> None:
        self.request("DELETE", f"/hooks/{self._q(hook_id)}")

    def triggers(self, workflow_id: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/workflows/{self._q(workflow_id)}/triggers")["items"])

    def add_trigger(self, workflow_id: str, rate_per_min: int | None = None) -> dict[str, Any]:
        """A secret URL starting runs of `workflow_id` as you; `secret` and `url` shown once."""
        body = {} if rate_per_min is None else {"rate_per_min": rate_per_min}
        answer: dict[str, Any] = self.request("POST", f"/workflows/{self._q(workflow_id)}/triggers", body)  # fmt: skip
        return answer

    def rotate_trigger(self, workflow_id: str, trigger_id: str) -> dict[str, Any]:
        """A new secret for a trigger; the old URL stops working at once."""
        path = f"/workflows/{self._q(workflow_id)}/triggers/{self._q(trigger_id)}/rotate"
        answer: dict[str, Any] = self.request("POST", path)
        return answer

    def remove_trigger(self, workflow_id: str, trigger_id: str) -> None:
        self.request("DELETE", f"/workflows/{self._q(workflow_id)}/triggers/{self._q(trigger_id)}")

    def fire_trigger(self, url: str, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Start a run through a trigger URL (no token needed: the URL is the secret)."""
        anonymous = type(self)(self.server, token="", timeout=self.timeout)
        path = url[len(self.server) :] if url.startswith(self.server) else url
        with anonymous._open("POST", path, dict(inputs or {})) as answer:
            started: dict[str, Any] = json.loads(answer.read())
        return started

    # -- accounts ---------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        """The calling user, how it authenticated, and its scopes."""
        answer: dict[str, Any] = self.request("GET", "/auth/me")
        return answer

    def login(
        self,
        username: str,
        password: str,
        name: str = "cli",
        scopes: list[str] | None = None,
        expires_in_s: float | None = None,
    ) -> dict[str, Any]:
        """Exchange a password for a new API token, through a session ended right after; returns
        the token's record with its secret under `token`, and uses that token from then on."""
        anonymous = type(self)(self.server, token="", timeout=self.timeout)
        credentials = {"username": username, "password": password}
        with anonymous._open("POST", "/api/v1/auth/login", credentials) as answer:
            csrf = json.loads(answer.read())["csrf_token"]
            cookies = [c.split(";")[0] for c in answer.headers.get_all("Set-Cookie") or []]
        session = {"Cookie": "; ".join(cookies), "X-CSRF-Token": csrf}
        body: dict[str, Any] = {"name": name, "scopes": scopes or ["read", "run"]}
        if expires_in_s is not None:
            body["expires_in_s"] = expires_in_s
        try:
            made: dict[str, Any] = anonymous.request("POST", "/tokens", body, session)
        finally:
            with contextlib.suppress(ApiError, OSError):
                anonymous.request("POST", "/auth/logout", None, session)
        self.token = str(made["token"])
        return made

    def logout(self) -> None:
        """Revoke the token this client uses (whatever its scopes); it stops working at once."""
        self.request("POST", "/auth/logout")

    def revoke_token(self, token_id: str) -> None:
        """Revoke one of your tokens (admins: anyone's); it stops working at once."""
        self.request("DELETE", f"/tokens/{self._q(token_id)}")
