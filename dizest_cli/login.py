"""`dizest login` and `dizest logout`: keep an API token per server in the user's config file.

Login asks for a user and password (or takes `--token`) and exchanges the password for a new API
token through the public API (`Client.login`); the password itself is never stored. The token goes
to a profile (`--profile`, default "default") of `dizest_cli.config`; the first profile, or one
logged in with `--default`, becomes the default. Logout revokes the token on the server (the one
it holds, not only one whose id login stored: a token given with `--token` has none) and checks
that the server no longer takes it; it forgets the profile in any case, and says so and exits 1
when the token may still work.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import click

from dizest_cli import config
from dizest_cli.common import api_errors, print_json, print_table
from dizest_cli.config import ConfigFileError, Profile
from dizest_cli.terminal import echo


def _config_or_exit() -> tuple[config.Config, Path]:
    path = config.config_path()
    try:
        return config.load(path), path
    except ConfigFileError as exc:
        raise click.UsageError(str(exc)) from None


@click.command()
@click.option("--server", required=True, metavar="URL", help="The dizest server, e.g. http://host:8000.")  # fmt: skip
@click.option("--profile", default=config.DEFAULT_PROFILE, show_default=True, metavar="NAME")
@click.option("--username", "-u", metavar="USER", help="Prompted for when omitted.")
@click.option(
    "--token",
    metavar="TOKEN",
    help="Store this API token instead of logging in with a password ('-': read it from stdin).",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["read", "run", "admin"]),
    help="Scopes of the new token (default: read, run).",
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin (scripts, no prompt)."
)
@click.option("--default", "make_default", is_flag=True, help="Make this the default profile.")
def login(
    server: str,
    profile: str,
    username: str | None,
    token: str | None,
    scopes: tuple[str, ...],
    password_stdin: bool,
    make_default: bool,
) -> None:
    """Log in to a dizest server and store an API token for it (no more --server)."""
    from dizest_api.client import Client

    try:
        server, profile = config.check_server(server), config.check_name(profile)
    except ConfigFileError as exc:
        raise click.BadParameter(str(exc)) from None
    stored, path = _config_or_exit()
    client = Client(server, token="")
    with api_errors(server):
        if token is not None:
            client.token = (sys.stdin.readline() if token == "-" else token).strip()
            if not client.token:
                raise click.BadParameter("the token is empty", param_hint="--token")
            me = client.me()
            user, token_id = str(me["user"]["username"]), ""
        else:
            if password_stdin and not username:
                raise click.UsageError("--password-stdin needs --username")
            user = username or click.prompt("Username")
            if password_stdin:
                password = sys.stdin.readline().rstrip("\r\n")
            else:
                password = click.prompt("Password", hide_input=True)
            name = f"dizest-cli@{socket.gethostname()}"[:100]
            made = client.login(user, password, name, list(scopes) or None)
            token_id = str(made.get("id") or "")
    assert client.token
    stored.profiles[profile] = Profile(profile, server, client.token, user, token_id)
    if make_default or stored.default not in stored.profiles:
        stored.default = profile
    config.save(stored, path)
    echo(f"logged in to {server} as {user} (profile {profile!r}); token stored in {path}")


@click.command()
@click.option("--profile", metavar="NAME", help="Default: the default profile.")
def logout(profile: str | None) -> None:
    """Revoke the profile's token on its server and forget it."""
    stored, path = _config_or_exit()
    name = profile or stored.default
    found = stored.profiles.get(name or "")
    if found is None:
        raise click.UsageError(f"no profile {name!r} in {path}")
    kept = _revoke(found)
    del stored.profiles[found.name]
    if stored.default == found.name:
        stored.default = next(iter(sorted(stored.profiles)), None)
    config.save(stored, path)
    if kept is None:
        echo(f"logged out of {found.server} (profile {found.name!r}); its token revoked")
        return
    echo(
        f"forgot profile {found.name!r}, but its token was NOT revoked on {found.server}: "
        f"{kept}. It works until it expires or is revoked there (`GET /api/v1/tokens` lists "
        "yours, `DELETE /api/v1/tokens/<id>` revokes one).",
        err=True,
    )
    sys.exit(1)


def _revoke(found: Profile) -> str | None:
    """Revoke the profile's token, and check that the server no longer takes it: None when it
    does not, else why it still may. `POST /auth/logout` revokes the token it is called with;
    a server older than that only ends sessions there, so a token whose id login stored is
    then revoked by id."""
    from dizest_api.client import ApiError, Client, Unauthorized

    client = Client(found.server, found.token)
    steps = [client.logout]
    if found.token_id:
        steps.append(lambda: client.revoke_token(found.token_id))
    why = "no way to revoke it"
    for step in steps:
        try:
            step()
            client.me()
        except Unauthorized:
            return None  # revoked now, or expired or revoked before: it works no more
        except (ApiError, OSError) as exc:
            why = str(exc)
        else:
            why = "the server still accepts it"
    return why


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def profiles(as_json: bool) -> None:
    """List the servers you are logged in to (never the tokens)."""
    stored, _ = _config_or_exit()
    rows = [
        {
            "profile": p.name,
            "server": p.server,
            "username": p.username,
            "default": p.name == stored.default,
        }
        for _, p in sorted(stored.profiles.items())
    ]
    if as_json:
        print_json(rows)
        return
    print_table(
        [("*" if r["default"] else "", r["profile"], r["server"], r["username"]) for r in rows],
        ["", "PROFILE", "SERVER", "USER"],
    )
