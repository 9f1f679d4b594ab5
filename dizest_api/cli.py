"""`dizest user ...` and `dizest token ...`: manage accounts straight in Redis (settings from env).

These talk to Redis through `dizest_worker.accounts`, so they work while the API is down, and
are how the first admin gets in when DIZEST_ADMIN_PASSWORD was not set.
"""

from __future__ import annotations

import click

from dizest_api.settings import ApiSettings
from dizest_core.errors import DizestError
from dizest_worker.accounts import SCOPES, Accounts, text_client
from dizest_worker.keys import Keys
from dizest_worker.library import Library


def _services() -> tuple[Accounts, Library]:
    settings = ApiSettings.from_env()
    client, keys = text_client(settings.worker), Keys(settings.worker.prefix)
    return Accounts(client, keys, bcrypt_rounds=settings.bcrypt_rounds), Library(client, keys)


def _fail(exc: DizestError) -> None:
    raise click.ClickException(str(exc)) from exc


@click.group()
def user() -> None:
    """Manage users (admin or user role)."""


@user.command("add")
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
def user_list() -> None:
    """List every user."""
    for found in _services()[0].users():
        click.echo(f"{found.username}\t{found.role}")


@user.command("passwd")
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
@click.argument("username")
@click.confirmation_option(prompt="Remove the user with their tokens and workflows?")
def user_remove(username: str) -> None:
    """Remove a user, their tokens and their workflows."""
    accounts, library = _services()
    try:
        accounts.get_user(username)
        library.delete_owned_by(username)
        accounts.remove_user(username)
    except DizestError as exc:
        _fail(exc)
    click.echo(f"removed {username}")


@click.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
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
@click.argument("username")
def token_list(username: str) -> None:
    """List USERNAME's tokens (id, name, scopes, expiry)."""
    for found in _services()[0].tokens(username):
        expires = "never" if found.expires_at is None else f"{found.expires_at:.0f}"
        click.echo(f"{found.id}\t{found.name}\t{','.join(sorted(found.scopes))}\t{expires}")


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a token by id; it stops working at once."""
    try:
        _services()[0].revoke_token(token_id)
    except DizestError as exc:
        _fail(exc)
    click.echo(f"revoked {token_id}")
