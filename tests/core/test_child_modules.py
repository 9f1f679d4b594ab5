"""What a flow child holds: the zygote's imports, which every child carries in its resident
memory (a 100 MB value's producer peaks at the value plus them: issue 12, bench/large_values.py).

Real zygote, real forks, with the flow sandbox on where the engine is root (as in workers).
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import package

MODES = ("off", "on") if os.geteuid() == 0 else ("off",)
# the engine's modules (settings, the package parser) and what only some flows use
NOT_PRELOADED = (
    "dizest_core.settings", "dizest_core.envconfig", "dizest_core.dwp", "dizest_core.graph",
    "dizest_core.interpreter", "dizest_core.drive", "dizest_core.tree", "shutil", "tempfile",
    "threading", "uuid", "mimetypes", "csv",
)  # fmt: skip
CODE = f"""
import sys
held = sorted(m for m in {NOT_PRELOADED!r} if m in sys.modules)
dizest.drive('sub').write('out.txt', 'hello')
v = dict(held=held, active=flow.active(), read=dizest.drive().read('sub/out.txt'))
"""


@pytest.mark.parametrize("sandbox", MODES)
def test_a_flow_child_holds_only_what_flows_use_and_imports_the_rest_on_use(
    make_workflow, tmp_path, sandbox
):
    wf = make_workflow(package({"a": {"code": CODE, "outputs": ["v"]}}, {"f": {"app": "a"}}),
                       sandbox=sandbox)  # fmt: skip
    for _ in range(2):  # a freshly forked child, then a spare that warmed up
        flow = wf.run(workdir=tmp_path)["flows"]["f"]
        assert flow["outputs"]["v"] == {"held": [], "active": True, "read": "hello"}, flow
