"""A removed user's request in flight, interleaved with the clearings of the removal and of the
user's other requests at the exact points where one lost what another wrote (threads held at
those points with events): what it wrote is cleared, and it is answered as it was done."""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dizest_api import drives
from dizest_api.automation.hooks import HookNotFound
from dizest_api.automation.service import Automation, install
from dizest_api.automation.settings import AutomationSettings
from dizest_api.data.library import WorkflowNotFound
from tests.api.conftest import Api
from tests.api.test_user_removal import PKG, URL, HeldBody


@pytest.fixture
def auto(api: Api) -> Automation:
    return install(api.app, AutomationSettings(webhook_allow_private=True))


class Gate:
    """A point a thread stops at until the test lets it go."""

    def __init__(self) -> None:
        self.reached, self.go = threading.Event(), threading.Event()

    def hold(self) -> None:
        self.reached.set()
        assert self.go.wait(30), "the test never let the thread go"

    def wait(self) -> None:
        assert self.reached.wait(30), "no thread reached the gate"


class HeldListing:
    """A Redis client whose first two listings of `key` stop: the first once it has read it
    (a clearing that listed), the second before it reads (a later clearing, about to list)."""

    def __init__(self, redis: Any, key: str) -> None:
        self.redis, self.key = redis, key
        self.listed, self.listing = Gate(), Gate()
        self.calls, self.lock = 0, threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.redis, name)

    def _list(self, how: str, key: str, *args: Any) -> Any:
        if key != self.key:
            return getattr(self.redis, how)(key, *args)
        with self.lock:
            self.calls += 1
            call = self.calls
        if call == 2:
            self.listing.hold()
        found = getattr(self.redis, how)(key, *args)
        if call == 1:
            self.listed.hold()
        return found

    def zrange(self, key: str, *args: Any) -> Any:
        return self._list("zrange", key, *args)

    def zrevrange(self, key: str, *args: Any) -> Any:
        return self._list("zrevrange", key, *args)


def send(api: Api, who: dict[str, str], method: str, path: str, body: Any) -> Any:
    kind = "application/json" if method == "POST" else "application/octet-stream"
    return api.app.test_client().open(
        f"/api/v1{path}", method=method, headers={**who, "Content-Type": kind}, input_stream=body
    )


def write_across_a_clearing(api: Api, path: str, body: bytes, held: HeldListing) -> Any:
    """The interleaving: erin's write authenticates; the removal lists her things (`held.key`)
    and stops; her write lands and its own clearing stops before it lists; the removal ends;
    her clearing lists. Her write's answer."""
    admin, erin = api.user("root", "admin"), api.user("erin")
    late = HeldBody(body)
    answers: dict[str, Any] = {}
    write = threading.Thread(
        target=lambda: answers.update(write=send(api, erin, "POST", path, late))
    )
    write.start()
    assert late.reading.wait(30), "erin's write never reached its view"
    removal = threading.Thread(
        target=lambda: answers.update(removal=api.call("DELETE", "/users/erin", admin))
    )
    removal.start()
    held.listed.wait()  # the removal's clearing listed erin's things: none yet
    late.go.set()
    held.listing.wait()  # erin's write is done, and its own clearing is about to list
    held.listed.go.set()
    removal.join(30)
    assert answers["removal"].status_code == 204
    held.listing.go.set()
    write.join(30)
    assert not write.is_alive() and not removal.is_alive()
    assert answers["write"].status_code == 201, answers["write"].json
    return answers["write"]


def test_a_workflow_stored_while_the_removal_clears_is_cleared_by_its_request(
    api: Api, auto: Automation, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = api.services.library
    held = HeldListing(library.redis, library.keys.user_workflows("erin"))
    monkeypatch.setattr(library, "redis", held)
    body = json.dumps({"package": PKG, "title": "late"}).encode()
    answer = write_across_a_clearing(api, "/workflows", body, held)
    with pytest.raises(WorkflowNotFound):
        library.get(answer.json["id"])
    assert library.redis.zcard(library.keys.workflows) == 0


def test_a_hook_made_while_the_removal_clears_is_cleared_by_its_request(
    api: Api, auto: Automation, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldListing(auto.hooks.redis, auto.hooks.keys.owned_hooks("erin"))
    monkeypatch.setattr(auto.hooks, "redis", held)
    answer = write_across_a_clearing(api, "/hooks", json.dumps({"url": URL}).encode(), held)
    with pytest.raises(HookNotFound):
        auto.hooks.get(answer.json["id"])
    assert auto.hooks.for_run("erin", None) == []


def test_an_upload_whose_drive_is_removed_as_it_ends_is_answered_and_leaves_nothing(
    api: Api, auto: Automation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload has put its file in place and let the drive lock go when the removal takes
    the drive: it still answers 201 (it did write; its own clearing then deletes again)."""
    admin, erin = api.user("root", "admin"), api.user("erin")
    drive = Path(api.services.settings.worker.drive_root) / "erin"
    ended, real = Gate(), drives._locked

    @contextlib.contextmanager
    def locked(base: str, username: str) -> Iterator[None]:
        with real(base, username):
            yield
        if threading.current_thread().name == "upload" and os.path.exists(drive / "late.csv"):
            ended.hold()  # the file is in place and the lock let go

    monkeypatch.setattr(drives, "_locked", locked)
    answers: list[Any] = []
    body = io.BytesIO(b"a,b\n1,2\n")
    upload = threading.Thread(
        target=lambda: answers.append(send(api, erin, "PUT", "/files/late.csv", body)),
        name="upload",
    )
    upload.start()
    ended.wait()
    assert api.call("DELETE", "/users/erin", admin).status_code == 204
    ended.go.set()
    upload.join(30)
    assert not upload.is_alive()
    assert answers[0].status_code == 201, answers[0].json
    assert answers[0].json["path"] == "late.csv"
    assert not drive.exists()
