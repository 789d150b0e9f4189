"""The SQL of API access: `api_tokens` rows (sha256 only) and their audit rows. Callers own the transaction."""

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import ApiToken, AuditEntry, utcnow


async def any_admin_token(session: AsyncSession) -> bool:
    """True once an admin token has ever been created: that ends open mode (revoked ones count: revoking every
    token does not reopen the API; the CLI, which needs database access, can always create a new one). A
    bridge's ingest token or a viewer's made first do not close the API to the admin who made them."""
    stmt = sa.select(ApiToken.id).where(ApiToken.role == "admin").limit(1)
    return (await session.execute(stmt)).first() is not None


async def token_by_digest(session: AsyncSession, digest: str) -> ApiToken | None:
    return (await session.scalars(sa.select(ApiToken).where(ApiToken.token_hash == digest))).first()


async def token_by_id(session: AsyncSession, token_id: int) -> ApiToken | None:
    return await session.get(ApiToken, token_id)


async def touch(session: AsyncSession, row: ApiToken, *, every: timedelta, now: datetime | None = None) -> None:
    """Records that the token was used, at most once per `every`."""
    now = now or utcnow()
    if row.last_used_at is None or now - row.last_used_at >= every:
        row.last_used_at = now


async def create_token(session: AsyncSession, *, name: str, role: str, digest: str, prefix: str,
                       created_by: str) -> ApiToken:
    """A new token row (the secret itself is never stored), audited."""
    now = utcnow()
    row = ApiToken(name=name, role=role, token_hash=digest, prefix=prefix, created_by=created_by, created_at=now)
    session.add(row)
    await session.flush()
    session.add(AuditEntry(at=now, actor=created_by, action="token.created", target_kind="token",
                           target_id=str(row.id), detail={"name": name, "role": role, "prefix": prefix}))
    return row


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    return list((await session.scalars(sa.select(ApiToken).order_by(ApiToken.id))).all())


async def revoke_token(session: AsyncSession, token_id: int, by: str) -> ApiToken | None:
    """Revokes a token (kept, for the audit trail); None if there is no such token. Revoking twice is a no-op."""
    row = await session.get(ApiToken, token_id)
    if row is None:
        return None
    if row.revoked_at is None:
        now = utcnow()
        row.revoked_at = now
        session.add(AuditEntry(at=now, actor=by, action="token.revoked", target_kind="token",
                               target_id=str(token_id), detail={"name": row.name, "role": row.role}))
    return row


async def list_audit(session: AsyncSession, *, limit: int = 200, since: datetime | None = None,
                     target_kind: str | None = None, target_id: str | None = None,
                     actor: str | None = None, action: str | None = None,
                     before_id: int | None = None) -> list[AuditEntry]:
    """The audit trail, newest first. `action` is an action ("alert.acknowledged") or, ending in ".", every
    action on a kind ("alert."); `before_id` pages: entries older than that one."""
    stmt = sa.select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if target_kind is not None:
        stmt = stmt.where(AuditEntry.target_kind == target_kind)
    if target_id is not None:
        stmt = stmt.where(AuditEntry.target_id == target_id)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action is not None:
        stmt = stmt.where(AuditEntry.action.startswith(action, autoescape=True) if action.endswith(".")
                          else AuditEntry.action == action)
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    return list((await session.scalars(stmt)).all())


async def bootstrap_notice(session: AsyncSession) -> str | None:
    """What `watchfloor up` prints at start while no token exists, else None."""
    if await any_admin_token(session):
        return None
    return ("API open: no admin token exists, so requests from 127.0.0.1 without a token act as admin. Create "
            "the first admin token with `watchfloor token add NAME --role admin`; from then on every request "
            "needs a token.")
