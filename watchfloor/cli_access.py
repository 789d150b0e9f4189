"""`watchfloor token add|list|revoke`: API tokens for the console and the HTTP API (roles ingest, viewer,
officer, admin).

The CLI reaches the database directly, so it can always make a token, even when every token is revoked.
"""

import click

from shared import access, store_access
from watchfloor.context import CliContext, checked, pass_ctx, run

OPERATOR = "cli"


@click.group()
def token() -> None:
    """API tokens: who may read, acknowledge and silence, or change rules (docs/console.md)."""


@token.command(name="add")
@click.argument("name")
@click.option("--role", type=click.Choice(access.ROLES), default="viewer", show_default=True,
              help="ingest only pushes posts; viewer reads; officer also acknowledges and silences; admin also "
                   "changes rules, subscriptions and tokens.")
@pass_ctx
def token_add(obj: CliContext, name: str, role: str) -> None:
    """Create a token for NAME (a person or a system: written to the audit table with everything it does).
    The token is printed once; only its sha256 is stored."""
    made = checked(lambda: access.new_token(role))

    async def body() -> int:
        async with obj.session() as session:
            row = await store_access.create_token(session, name=name, role=role, digest=made.digest,
                                                  prefix=made.prefix, created_by=OPERATOR)
            return row.id

    token_id = run(body)
    click.echo(made.secret)
    click.echo(f"token {token_id} for {name} ({role}) created. Copy it now: it is not shown again. Send it as "
               f"`Authorization: Bearer <token>`, or paste it into the console.", err=True)


@token.command(name="list")
@pass_ctx
def token_list(obj: CliContext) -> None:
    """Tokens (never the secret): id, prefix, name, role, last use, revocation."""

    async def body() -> list:
        async with obj.session() as session:
            return list(await store_access.list_tokens(session))

    rows = run(body)
    for r in rows:
        used = r.last_used_at.isoformat(timespec="seconds") if r.last_used_at else "never used"
        state = f"REVOKED {r.revoked_at.isoformat(timespec='seconds')}" if r.revoked_at else "active"
        click.echo(f"{r.id:<4} {r.prefix}…  {r.role:<8} {state:<28} {used:<26} {r.name}")
    if not rows:
        click.echo("no token: the API is open to 127.0.0.1 only, as admin. Create the first one with "
                   "`watchfloor token add NAME --role admin`.", err=True)


@token.command(name="revoke")
@click.argument("token_id", type=int)
@pass_ctx
def token_revoke(obj: CliContext, token_id: int) -> None:
    """Revoke a token at once (it stays listed, for the audit trail)."""

    async def body() -> tuple[str, str] | None:
        async with obj.session() as session:
            row = await store_access.revoke_token(session, token_id, by=OPERATOR)
            return None if row is None else (row.name, row.role)

    found = run(body)
    if found is None:
        raise click.ClickException(f"no token {token_id}: see `watchfloor token list`")
    click.echo(f"token {token_id} ({found[0]}, {found[1]}) revoked")
