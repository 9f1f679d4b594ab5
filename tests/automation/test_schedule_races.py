"""A schedule changed while it is deleted: a probe's PATCH racing a DELETE ended 4 times in 40
with both answered (204 and 200) and the schedule alive but hidden: it answered GET, was in no
list and no quota, outlived its workflow and kept firing. The exact interleaving, driven."""

from __future__ import annotations

import pytest

from dizest_api.automation import schedules
from dizest_api.automation.schedules import Schedule
from dizest_api.automation.service import install
from dizest_api.automation.settings import AutomationSettings
from tests.api.conftest import Api, api, session_prefix  # noqa: F401
from tests.automation.test_api import _stored, _wf


@pytest.mark.parametrize("change", [{"cron": "@hourly"}, {"enabled": False}])
def test_a_schedule_deleted_between_a_patchs_read_and_write_stays_deleted(
    api: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, object],
) -> None:
    found = install(api.app, AutomationSettings())
    alice = api.user("alice")
    wf_id = _wf(api, alice)
    made = api.call("POST", f"/workflows/{wf_id}/schedules", alice, json={"cron": "@daily"})
    sid = made.json["id"]
    real, deleted = schedules._checked, []

    def deleted_meanwhile(sched: Schedule, celery: object) -> Schedule:
        """The PATCH has read the record and checks the new one, about to write it."""
        if not deleted:
            deleted.append(api.call("DELETE", f"/schedules/{sid}", alice).status_code)
        return real(sched, celery)

    monkeypatch.setattr(schedules, "_checked", deleted_meanwhile)
    patched = api.call("PATCH", f"/schedules/{sid}", alice, json=change)
    monkeypatch.undo()
    assert deleted == [204]
    assert patched.status_code == 404, patched.json  # it was gone before it could be changed
    assert api.call("GET", f"/schedules/{sid}", alice).status_code == 404
    with pytest.raises(KeyError):
        found.schedules.entry(sid)  # nothing for the beat to fire
    assert _stored(api, found) == []
