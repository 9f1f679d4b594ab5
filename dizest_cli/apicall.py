"""`dizest api-call RUN FLOW NAME [--json BODY] [-p key=value]`: call an app's `api` function.

The call goes through the public API (`dizest_api.client.Client.api_call`, runner right) and
runs on a worker like a flow. The answer goes to stdout: JSON pretty-printed, text as is, bytes
raw (or to `-o FILE`). An error of the function prints its traceback and exits 1; a usage
error (a body that is not JSON, a parameter without `=`) exits 2.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from dizest_cli.common import api_errors, connect, print_json, server_options
from dizest_cli.terminal import safe_line


def _body(text: str | None) -> Any:
    if text is None:
        return None
    if text.startswith("@"):  # a file, as curl does it
        with open(text[1:], encoding="utf-8") as fh:
            text = fh.read()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--json") from None


def _params(items: tuple[str, ...]) -> dict[str, str]:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--param")
        params[key] = value
    return params


@click.command("api-call")
@server_options
@click.argument("run_id")
@click.argument("flow_id")
@click.argument("name")
@click.option("--json", "body", metavar="BODY", help="The JSON body (or @FILE).")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A request value (repeatable).")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(0, 300, min_open=True), help="Seconds (<= 300).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the answer here.")
def api_call(
    server: str | None,
    profile: str | None,
    run_id: str,
    flow_id: str,
    name: str,
    body: str | None,
    params: tuple[str, ...],
    timeout: float | None,
    output: str | None,
) -> None:
    """Call the api function NAME of flow FLOW_ID in run RUN_ID; print its answer."""
    client = connect(server, profile)
    payload, values = _body(body), _params(params)
    with api_errors(client.server):
        answer = client.api_call(run_id, flow_id, name, payload, values, timeout)
    if output is not None:
        data = answer if isinstance(answer, bytes) else _text(answer).encode()
        with open(output, "wb") as fh:
            fh.write(data)
    elif isinstance(answer, bytes):
        sys.stdout.buffer.write(answer)
    elif isinstance(answer, str) and sys.stdout.isatty():  # a flow author's text, on a screen
        click.echo("\n".join(safe_line(line) for line in answer.split("\n")))
    elif isinstance(answer, str):  # piped or redirected: the answer as it is
        click.echo(answer)
    else:
        print_json(answer)


def _text(answer: Any) -> str:
    return answer if isinstance(answer, str) else json.dumps(answer, indent=2)
