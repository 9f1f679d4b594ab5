"""`dizest user ...` and `dizest token ...`: manage accounts straight in Redis.

These talk to Redis through `dizest_api.data.accounts`, so they work while the API is down, and
are how the first admin gets in when DIZEST_ADMIN_PASSWORD was not set.

Which Redis: the one `dizest serve --data-dir DIR` recorded in `DIR/redis.json` when `--data-dir`
is given; else DIZEST_REDIS_URL; else the record in `.dizest` (serve's default data dir). When
none of them is there the command refuses, naming what it looked for: it never falls back to a
Redis the user did not name (a default redis://127.0.0.1:6379 may well be another installation).

`dizest user remove` removes everything of the user's (`dizest_api.user_removal`), their drive
included: under DIZEST_DRIVE_ROOT, else `<data dir>/drives` as `dizest serve` keeps them.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click

from dizest_api.automation.service import build as build_automation
from dizest_api.automation.settings import AutomationSettings
from dizest_api.data.accounts import SCOPES, Accounts, text_client
from dizest_api.data.library import Library
from dizest_api.embedded_redis import LOCATION_FILE, locate
from dizest_api.settings import ApiSettings
from dizest_api.user_removal import Stores, remove_user
from dizest_core.errors import DizestError
from dizest_worker.client import reach, redact_url
from dizest_worker.keys import Keys

DEFAULT_DATA_DIR = ".dizest"  # as `dizest serve --data-dir`
META = "dizest.data_dir"


def _remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[META] = value  # meta is shared by the group and its subcommand


DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    expose_value=False,
    callback=_remember,
    help="The data dir of the `dizest serve` whose Redis to use (default: DIZEST_REDIS_URL, "
    f"else {DEFAULT_DATA_DIR}).",
)


def redis_location(data_dir: str | None, environ: dict[str, str]) -> tuple[str, str]:
    """(URL, where it came from) of the Redis to manage accounts in; ClickException when none
    is named."""
    if data_dir is None and environ.get("DIZEST_REDIS_URL"):
        return environ["DIZEST_REDIS_URL"], "DIZEST_REDIS_URL"
    root = Path(data_dir or DEFAULT_DATA_DIR).resolve()
    try:
        url = locate(root)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if url is None:
        hint = "" if data_dir else "DIZEST_REDIS_URL is not set and "
        raise click.ClickException(
            f"no Redis to use: {hint}{root / LOCATION_FILE} does not exist (`dizest serve "
            f"--data-dir {root}` writes it while it runs its own Redis; one given "
            "DIZEST_REDIS_URL writes none). Pass the --data-dir of your `dizest serve`, or set "
            "DIZEST_REDIS_URL (and DIZEST_PREFIX) as that serve has them."
        )
    return url, str(root / LOCATION_FILE)


def _services() -> tuple[Accounts, Library]:
    accounts, library, _ = _stores()
    return accounts, library


def _stores() -> tuple[Accounts, Library, ApiSettings]:
    data_dir: str | None = click.get_current_context().meta.get(META)
    environ = dict(os.environ)
    url, source = redis_location(data_dir, environ)
    environ["DIZEST_REDIS_URL"] = url
    if data_dir is not None:
        environ["DIZEST_DATA_DIR"] = data_dir
        # where `dizest serve --data-dir` keeps users' drives, unless told otherwise
        environ.setdefault("DIZEST_DRIVE_ROOT", str(Path(data_dir).resolve() / "drives"))
    try:
        settings = ApiSettings.from_env(environ)
    except DizestError as exc:
        raise click.ClickException(str(exc)) from exc
    try:  # one quick try: the shared client would retry for a minute
        reach(url)
    except DizestError as exc:
        raise click.ClickException(f"{exc} (from {source}); is `dizest serve` running?") from None
    client, keys = text_client(settings.worker), Keys(settings.worker.prefix)
    accounts = Accounts(client, keys, bcrypt_rounds=settings.bcrypt_rounds)
    return accounts, Library(client, keys, limits=settings.library_limits()), settings


def _fail(exc: DizestError) -> None:
    raise click.ClickException(str(exc)) from exc


@click.group()
@DATA_DIR
def user() -> None:
    """Manage users (admin or user role)."""


@user.command("add")
@DATA_DIR
@click.argument("username")
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True)
@click.password_option(help="Prompted for when omitted.")
def user_add(username: str, role: str, password: str) -> None:
    """Add a user."""
    try:
        _services()[0].add_user(username, password, role)
    except DizestError as exc:
        _fail(exc)
    click.echo(f"added {role} {username}")


@user.command("list")
@DATA_DIR
def user_list() -> None:
    """List every user."""
    accounts, _, settings = _stores()
    found = accounts.users()
    for each in found:
        click.echo(f"{each.username}\t{each.role}")
    if not found:  # a Redis or prefix no server uses looks like a server without users
        where = f"{redact_url(settings.worker.redis_url)}, prefix {settings.worker.prefix!r}"
        click.echo(f"no users at {where}: is that the server's (DIZEST_PREFIX)?", err=True)


@user.command("passwd")
@DATA_DIR
@click.argument("username")
@click.password_option(help="Prompted for when omitted.")
def user_passwd(username: str, password: str) -> None:
    """Set a user's password (ends their sessions)."""
    try:
        _services()[0].set_password(username, password)
    except DizestError as exc:
        _fail(exc)
    click.echo(f"password of {username} changed")


@user.command("remove")
@DATA_DIR
@click.argument("username")
@click.confirmation_option(
    prompt="Remove the user with everything of theirs (the name is not given again)?"
)
def user_remove(username: str) -> None:
    """Remove a user with their tokens, workflows, webhooks, schedules, triggers and drive; the
    name is not given again (their runs stay under it until they expire)."""
    accounts, library, settings = _stores()
    worker = settings.worker
    # with the beat's Celery app: the schedules' beat entries are deleted too
    automation = build_automation(accounts.redis, worker, AutomationSettings.from_env())
    try:
        drive = remove_user(Stores(accounts, library, automation, worker.drive_root), username)
    except DizestError as exc:
        _fail(exc)
    click.echo(f"removed {username}" + (f" and their drive {drive}" if drive else ""))


@click.group()
@DATA_DIR
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@DATA_DIR
@click.argument("username")
@click.option("--name", default="cli", show_default=True)
@click.option("--scope", "scopes", multiple=True, type=click.Choice(sorted(SCOPES)))
@click.option("--expires-in", type=float, help="Lifetime in seconds (default: none).")
def token_create(
    username: str, name: str, scopes: tuple[str, ...], expires_in: float | None
) -> None:
    """Create a token for USERNAME and print it (it is shown only this once)."""
    try:
        new = _services()[0].create_token(username, name, scopes or ("read", "run"), expires_in)
    except DizestError as exc:
        _fail(exc)
    click.echo(new.secret)


@token.command("list")
@DATA_DIR
@click.argument("username")
def token_list(username: str) -> None:
    """List USERNAME's tokens (id, name, scopes, expiry)."""
    for found in _services()[0].tokens(username):
        expires = "never" if found.expires_at is None else _moment(found.expires_at)
        click.echo(f"{found.id}\t{found.name}\t{','.join(sorted(found.scopes))}\t{expires}")


@token.command("revoke")
@DATA_DIR
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a token by id; it stops working at once."""
    try:
        _services()[0].revoke_token(token_id)
    except DizestError as exc:
        _fail(exc)
    click.echo(f"revoked {token_id}")


def _moment(epoch: float) -> str:
    """A time for people, in UTC to the second (`2026-12-05T19:04:05+00:00`)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
