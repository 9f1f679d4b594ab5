"""The in-flow `dizest` API, case by case, through real runs (each flow in a child process)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import package


def run_one(
    make_workflow, tmp_path: Path, code: str, inputs=(), outputs=("v",), data=None, **run_args
):
    pkg = package(
        {"app": {"code": code, "inputs": list(inputs), "outputs": list(outputs)}},
        {"f": {"app": "app", "data": data or {}}},
    )
    report = make_workflow(pkg).run(workdir=tmp_path, **run_args)
    return report["flows"]["f"]


def test_input_default_params_and_undeclared(make_workflow, tmp_path):
    code = (
        "dizest.output('a', dizest.input('k', 'dflt'))\n"
        "dizest.output('b', dizest.input('nope', 5))\n"
        "dizest.output('c', dizest.input('p', 'dflt'))\n"
        "dizest.output('g', p)\n"
    )
    pkg = package(
        {
            "app": {
                "code": code,
                "inputs": [("k", "variable", "text")],
                "outputs": ["a", "b", "c", "g"],
            }
        },
        {"f": {"app": "app", "data": {"k": ""}}, "f2": {"app": "app", "data": {"k": "x"}}},
    )
    report = make_workflow(pkg).run(inputs={"p": [1, 2], "f2.k": None}, workdir=tmp_path)
    assert report["flows"]["f"]["outputs"] == {"a": "dflt", "b": 5, "c": [1, 2], "g": [1, 2]}
    # a run input given for one flow wins even when it is None (DIZEST: default then ignored)
    assert report["flows"]["f2"]["outputs"]["a"] is None


def test_a_run_input_for_a_variable_is_read_as_its_stored_value(make_workflow, tmp_path):
    """The console's run form sends a changed field as the string DIZEST's UI stores: the flow
    reads it as it reads the package's own value (number -> float, "" -> the default)."""
    code = (
        "dizest.output('v', [dizest.input(n, 'dflt') for n in ('num', 'bad', 'txt', 'chk')])\n"
        "dizest.output('g', [num, txt, other])\n"
    )
    kinds = [("num", "number"), ("bad", "number"), ("txt", "text"), ("chk", "check")]
    pkg = package(
        {
            "app": {
                "code": code,
                "inputs": [(name, "variable", kind) for name, kind in kinds],
                "outputs": ["v", "g"],
            },
            "plain": {"code": "v = other", "outputs": ["v"]},
        },
        {
            "f": {"app": "app", "data": {"num": "1", "bad": "2", "txt": "t", "chk": True}},
            "f2": {"app": "app", "data": {"num": "1"}},
            "p": {"app": "plain"},
        },
    )
    inputs = {"f.num": "-2.5e3", "f.bad": "abc", "f.txt": "", "f.chk": False, "f2.num": 7}
    inputs["other"] = "3"  # a global no flow declares stays as given
    flows = make_workflow(pkg).run(inputs=inputs, workdir=tmp_path)["flows"]
    assert flows["f"]["outputs"]["v"] == [-2500.0, "abc", "dflt", False]
    assert flows["f"]["outputs"]["g"] == [-2500.0, None, "3"]  # (a global's default: None)
    assert flows["f2"]["outputs"]["v"][0] == 7.0 and flows["p"]["outputs"]["v"] == "3"


def test_wired_inputs_order_missing_and_last_value(make_workflow, tmp_path):
    pkg = package(
        {
            "one": {"code": "v = 1", "outputs": ["v"]},
            "none": {"code": "pass", "outputs": ["v"]},
            "two": {"code": "v = 2", "outputs": ["v"]},
            "join": {
                "code": "dizest.output(all=dizest.inputs('x'), last=dizest.input('x'),\n"
                "              var=dizest.inputs('k'), und=dizest.inputs('zz'))",
                "inputs": ["x", ("k", "variable", "text")],
                "outputs": ["all", "last"],
            },
        },
        {
            "a": {"app": "one"},
            "b": {"app": "two"},
            "n": {"app": "none"},
            "j": {"app": "join", "in": {"x": [("a", "v"), ("b", "v"), ("n", "v")]}},
        },
    )
    out = make_workflow(pkg).run(workdir=tmp_path)["flows"]["j"]["outputs"]
    assert out["all"] == [1, 2, None]
    assert out["last"] == 2  # the last connected source that has a value
    assert out["var"] == [] and out["und"] == []


def test_outputs_getter_setter_kwargs_and_implicit_globals(make_workflow, tmp_path):
    code = (
        "dizest.output('a', 1)\n"
        "dizest.output(b=2, c=3)\n"
        "d = dizest.output('a') + dizest.output('b')\n"
        "e = 'from global'\n"
        "undeclared_global = 1\n"
        "dizest.output('extra', 'set, not declared')\n"
    )
    flow = run_one(make_workflow, tmp_path, code, outputs=["a", "b", "c", "d", "e", "never"])
    assert flow["outputs"] == {
        "a": 1,
        "b": 2,
        "c": 3,
        "d": 3,
        "e": "from global",
        "extra": "set, not declared",
    }


def test_output_explicit_beats_global(make_workflow, tmp_path):
    flow = run_one(make_workflow, tmp_path, "v = 'global'\ndizest.output('v', 'explicit')")
    assert flow["outputs"] == {"v": "explicit"}


def test_outputs_are_copies_between_consumers(make_workflow, tmp_path):
    pkg = package(
        {
            "src": {"code": "v = [1]", "outputs": ["v"]},
            "mut": {
                "code": "x = dizest.input('x')\nx.append(99)\nv = x",
                "inputs": ["x"],
                "outputs": ["v"],
            },
        },
        {
            "s": {"app": "src"},
            "m1": {"app": "mut", "in": {"x": [("s", "v")]}},
            "m2": {"app": "mut", "in": {"x": [("s", "v")]}},
        },
    )
    flows = make_workflow(pkg).run(workdir=tmp_path)["flows"]
    assert flows["m1"]["outputs"]["v"] == [1, 99] == flows["m2"]["outputs"]["v"]
    assert flows["s"]["outputs"]["v"] == [1]


def test_print_display_result_and_clear(make_workflow, tmp_path):
    code = (
        "import sys\n"
        "print('a', 1, {'k': 2}, sep='|')\n"
        "print()\n"
        "display({'k': [1, 2]}, 'text')\n"
        "print('to stderr', file=sys.stderr)\n"
        "dizest.result('table', {'rows': 3})\n"
    )
    flow = run_one(make_workflow, tmp_path, code)
    assert flow["log"][0] == "a|1|{'k': 2}"
    assert flow["log"][1] == ""
    assert flow["log"][2] == {"mime": "application/json", "data": '{"k": [1, 2]}'}
    assert flow["log"][3] == "text"
    assert flow["log"][4] == "to stderr"
    assert flow["results"] == [
        {"name": "table", "value": {"mime": "application/json", "data": '{"rows": 3}'}}
    ]
    cleared = run_one(make_workflow, tmp_path, "print('gone')\ndizest.clear()\nprint('kept')")
    assert cleared["log"] == ["kept"]


def test_rich_print_renders_figures_and_tables(make_workflow, tmp_path):
    code = (
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "import pandas as pd\n"
        "plt.plot([1, 2, 3])\n"
        "print('chart:', plt)\n"
        "print(pd.DataFrame({'a': range(100)}))\n"
    )
    log = run_one(make_workflow, tmp_path, code)["log"]
    assert log[0] == "chart:"
    assert log[1]["mime"] == "image/png" and log[1]["data"].startswith("iVBOR")  # PNG signature
    assert log[2]["mime"] == "text/html" and log[2]["data"].count("<tr") < 60


def test_text_is_never_turned_into_html(make_workflow, tmp_path):
    flow = run_one(make_workflow, tmp_path, "print('<script>alert(1)</script> & co')")
    assert flow["log"] == ["<script>alert(1)</script> & co"]


def test_drive_is_rooted_at_workdir_and_cannot_escape(make_workflow, tmp_path):
    (tmp_path / "in.json").write_text(json.dumps({"x": 1}))
    code = (
        "d = dizest.drive()\n"
        "v = d.read.json('in.json')\n"
        "dizest.drive('sub').write('out.txt', 'hello')\n"
        "try:\n    d.read('../../etc/passwd')\n    esc = 'escaped'\n"
        "except PermissionError as e:\n    esc = 'refused'\n"
        "import os\ncwd = os.getcwd()\n"
    )
    flow = run_one(make_workflow, tmp_path, code, outputs=["v", "esc", "cwd"])
    assert flow["outputs"] == {"v": {"x": 1}, "esc": "refused", "cwd": str(tmp_path)}
    assert (tmp_path / "sub" / "out.txt").read_text() == "hello"


def test_traceback_has_user_line_numbers_and_is_plain(make_workflow, tmp_path):
    code = "x = 1\n\ndef f():\n    return 1 / 0\n\nf()\n"
    flow = run_one(make_workflow, tmp_path, code)
    assert flow["status"] == "error"
    assert flow["reason"] == "ZeroDivisionError: division by zero"
    tb = flow["log"][-1]
    assert 'File "<flow f>", line 6, in <module>' in tb
    assert 'File "<flow f>", line 4, in f' in tb
    assert "return 1 / 0" in tb and "runtime.py" not in tb and "<br>" not in tb


def test_sys_exit_is_an_error_not_a_hang(make_workflow, tmp_path):
    pkg = package(
        {
            "bye": {"code": "import sys\nprint('leaving')\nsys.exit(0)", "outputs": ["v"]},
            "after": {"code": "v = 1", "inputs": ["x"], "outputs": ["v"]},
        },
        {"b": {"app": "bye"}, "a": {"app": "after", "in": {"x": [("b", "v")]}}},
    )
    report = make_workflow(pkg).run(workdir=tmp_path, timeout=30)
    assert report["flows"]["b"]["status"] == "error"
    assert "sys.exit(0)" in report["flows"]["b"]["reason"]
    assert report["flows"]["a"] == {
        **report["flows"]["a"],
        "status": "idle",
        "reason": "upstream failed: b",
    }
    assert report["status"] == "error"


def test_unserializable_output_is_a_clear_error(make_workflow, tmp_path):
    flow = run_one(make_workflow, tmp_path, "import threading\nv = threading.Lock()")
    assert flow["status"] == "error"
    assert "output 'v' (lock) cannot be serialized" in flow["reason"]


def test_functions_and_classes_defined_in_a_flow_reach_its_consumers(make_workflow, tmp_path):
    # DIZEST shares objects between flows; ours cross processes, so what a flow defines
    # travels by value (cloudpickle) rather than as a reference to an unimportable module.
    producer = (
        "import math\n"
        "class Point:\n"
        "    def __init__(self, x, y):\n        self.x, self.y = x, y\n"
        "    def norm(self):\n        return math.hypot(self.x, self.y)\n"
        "def double(n):\n    return 2 * n\n"
        "cls = Point\nfn = double\npoint = Point(3, 4)\nlam = lambda n: n + 1\n"
    )
    consumer = (
        "p = dizest.input('point')\n"
        "v = [dizest.input('cls')(6, 8).norm(), dizest.input('fn')(21), p.norm(),\n"
        "     type(p).__name__, dizest.input('lam')(1)]\n"
    )
    names = ["cls", "fn", "point", "lam"]
    pkg = package(
        {
            "make": {"code": producer, "outputs": names},
            "use": {"code": consumer, "inputs": names, "outputs": ["v"]},
        },
        {"m": {"app": "make"}, "u": {"app": "use", "in": {n: [("m", n)] for n in names}}},
    )
    flows = make_workflow(pkg).run(workdir=tmp_path)["flows"]
    assert flows["m"]["status"] == "ready", flows["m"]
    assert flows["u"]["outputs"]["v"] == [10.0, 42, 5.0, "Point", 2]


def test_output_without_json_form_is_typed_in_report(make_workflow, tmp_path):
    flow = run_one(make_workflow, tmp_path, "v = {1, 2}")
    assert flow["outputs"]["v"] == {"$type": "builtins.set", "$repr": "{1, 2}"}


def test_main_guard_does_not_run(make_workflow, tmp_path):
    assert run_one(make_workflow, tmp_path, "v = __name__ == '__main__'")["outputs"]["v"] is False


def test_flow_is_dizests_core_flow(make_workflow, tmp_path):
    code = (
        "f = dizest.flow\n"
        "v = dict(same=flow is f, id=f.id(), title=f.title(), active=f.active(),\n"
        "         app=[f.app().id(), f.app().title(), f.app().outputs()],\n"
        "         inputs=f.inputs(), previous=f.previous(), pkg=f.package()['app_id'])\n"
        "try:\n    f.update(title='x')\nexcept NotImplementedError:\n    v['update'] = 'refused'\n"
    )
    pkg = package(
        {
            "src": {"code": "v = 1", "outputs": ["v"]},
            "app": {"code": code, "inputs": ["x", ("k", "variable", "number")], "outputs": ["v"]},
        },
        {
            "a": {"app": "src", "title": "Source"},
            "b": {"app": "src"},
            "f": {
                "app": "app",
                "data": {"k": "2"},
                "in": {"x": [("a", "v"), ("b", "v"), ("a", "v")]},
            },
        },
    )
    out = make_workflow(pkg).run(workdir=tmp_path)["flows"]["f"]["outputs"]["v"]
    assert out == {
        "same": True,
        "id": "f",
        "title": "app",  # no flow title: the app's (DIZEST would say the same)
        "active": True,
        "app": ["app", "app", ["v"]],
        "inputs": {
            "x": {"type": "output", "data": [["a", "v"], ["b", "v"], ["a", "v"]]},
            "k": {"type": "variable", "data": "2", "inputtype": "number"},
        },
        "previous": ["a", "b"],
        "pkg": "app",
        "update": "refused",
    }


def test_workflow_global_views_the_package(make_workflow, tmp_path):
    code = (
        "v = [workflow.apps(), [f.id() for f in workflow.flows()],\n"
        "     workflow.flow('a').title(), workflow.flow('nope'), workflow.app('src').code(),\n"
        "     sorted(workflow.to_dict())]\n"
    )
    pkg = package(
        {"src": {"code": "v = 1", "outputs": ["v"]}, "app": {"code": code, "outputs": ["v"]}},
        {"a": {"app": "src", "title": "Source"}, "f": {"app": "app"}},
    )
    out = make_workflow(pkg).run(workdir=tmp_path)["flows"]["f"]["outputs"]["v"]
    # a titled flow answers its title (DIZEST answers "Unknown": a bug we do not copy)
    assert out == [["src", "app"], ["a", "f"], "Source", None, "v = 1", ["apps", "flow"]]


def test_partial_outputs_of_a_failed_flow_are_shown_not_passed_on(make_workflow, tmp_path):
    pkg = package(
        {
            "bad": {
                "code": "dizest.output('a', 1)\nb = 2\nraise ValueError('x')",
                "outputs": ["a", "b"],
            },
            "use": {"code": "v = 1", "inputs": ["x"], "outputs": ["v"]},
        },
        {"bad": {"app": "bad"}, "use": {"app": "use", "in": {"x": [("bad", "a")]}}},
    )
    flows = make_workflow(pkg).run(workdir=tmp_path)["flows"]
    assert flows["bad"]["outputs"] == {"a": 1}  # explicit output kept; global b not taken
    assert flows["use"]["status"] == "idle"


def test_plugin_renderers_run_in_the_flow_child(make_workflow, tmp_path):
    plugin = tmp_path / "plugins" / "money"
    plugin.mkdir(parents=True)
    (plugin / "plugin.json").write_text(
        json.dumps({"name": "money", "title": "Money", "version": "1", "renderers": ["render.py"]})
    )
    (plugin / "render.py").write_text(
        "from dizest_core.render import register\n"
        "register(lambda v: type(v).__name__ == 'Money',\n"
        "         lambda v: {'mime': 'text/html', 'data': f'<b>{v.cents / 100:.2f} EUR</b>'},\n"
        "         name='money')\n"
    )
    code = (
        "class Money:\n    def __init__(self, c):\n        self.cents = c\n\ndisplay(Money(1250))"
    )
    pkg = package({"app": {"code": code}}, {"f": {"app": "app"}})
    wf = make_workflow(pkg, plugin_paths=(str(tmp_path / "plugins"),))
    log = wf.run(workdir=tmp_path)["flows"]["f"]["log"]
    assert log == [{"mime": "text/html", "data": "<b>12.50 EUR</b>"}]
