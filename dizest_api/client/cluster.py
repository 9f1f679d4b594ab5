"""Client calls about the cluster: its workers (admins), and what their flows can import."""

from __future__ import annotations

from typing import Any

from dizest_api.client.base import Base


class ClusterMixin(Base):
    """The cluster, as its operators see it."""

    def workers(self) -> list[dict[str, Any]]:
        """The live workers (admins; others get `Forbidden`): each one's name, host, pid,
        version, queues, slots, the flows it runs now (`running`, `flows`), its machine's load,
        memory and disk, and `last_beat_s`, as `GET /api/v1/workers` answers (docs/api.md)."""
        return list(self.request("GET", "/workers")["items"])

    def packages(self) -> list[dict[str, Any]]:
        """The live workers' environments (any user): each `{python, workers, packages: [{name,
        version}]}`, as `GET /api/v1/packages` answers (docs/api.md)."""
        return list(self.request("GET", "/packages")["environments"])

    def check_requirements(self, requirements: str) -> dict[str, Any]:
        """A requirements.txt's text checked against each environment of the live workers:
        `{environments, requirements: [{line, name, problem, installed, satisfied}]}`."""
        body = {"requirements": requirements}
        return dict(self.request("POST", "/packages/check", body))
