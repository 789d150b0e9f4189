"""Who may do what: no token is 401, too low a role is 403, each with a reason a person can act on; tokens,
rule changes, silences and acknowledgements are audited with the token's name. Real HTTP on 127.0.0.1."""

import logging

import httpx
import pytest
import sqlalchemy as sa
from fastapi import HTTPException
from starlette.requests import Request

from shared import access
from shared.models import ApiToken, AuditEntry
from tests.alert.apiclient import base_url, bearer, make_token, publish_logged, server
from tests.alert.conftest import Running, eventually
from tests.alert.events import vbied_niamey_en
from tests.alert.test_rules import FIRST_RULE

__all__ = ["base_url", "server"]   # fixtures


async def _audit(running: Running) -> list[tuple[str, str, str]]:
    async with running.sessions() as session:
        rows = (await session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id))).all()
    return [(r.actor, r.action, r.target_id) for r in rows]


async def test_no_token_is_401_and_too_low_a_role_is_403_with_the_reason(running: Running, base_url: str) -> None:
    viewer = await make_token(running.sessions, "analyst", "viewer")
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        assert (await client.get("/api/alerts")).status_code == 200  # open mode lasts until an admin token exists
    await make_token(running.sessions, "lead", "admin")
    officer = await make_token(running.sessions, "duty officer", "officer")
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        missing = await client.get("/api/alerts")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["detail"].startswith(
            "missing bearer token: create one with `watchfloor token add NAME --role viewer`")
        unknown = await client.get("/api/alerts", headers=bearer("wf_v_not-a-real-token"))
        assert unknown.status_code == 401 and "unknown token" in unknown.json()["detail"]
        assert (await client.get("/api/alerts", headers={"authorization": "Basic Zm9vOmJhcg=="})).status_code == 401

        assert (await client.get("/api/alerts", headers=bearer(viewer))).status_code == 200
        ack = await client.post("/api/alerts/any/ack", json={}, headers=bearer(viewer))
        assert ack.status_code == 403
        assert ack.json()["detail"] == "role viewer may not acknowledge alerts: needs officer"
        silence = await client.post("/api/silences", headers=bearer(viewer),
                                    json={"matchers": {"rule_ids": ["x"]}, "reason": "r", "duration": "1h"})
        assert (silence.status_code, silence.json()["detail"]) == (
            403, "role viewer may not create silences: needs officer")
        rule = await client.post("/api/rules", content=FIRST_RULE, headers=bearer(officer))
        assert (rule.status_code, rule.json()["detail"]) == (403, "role officer may not change rules: needs admin")
        tokens = await client.get("/api/tokens", headers=bearer(officer))
        assert (tokens.status_code, tokens.json()["detail"]) == (
            403, "role officer may not manage API tokens: needs admin")

    async with running.sessions() as session:
        used = {r.name: r.last_used_at for r in (await session.scalars(sa.select(ApiToken))).all()}
    assert used["analyst"] is not None and used["duty officer"] is not None


async def test_the_api_is_open_on_loopback_until_the_first_token_exists(running: Running, base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        me = await client.get("/api/whoami")
        assert me.json() == {"name": "anonymous@loopback", "role": "admin", "anonymous": True}
        made = await client.post("/api/tokens", json={"name": "ana (admin)", "role": "admin"})
        assert made.status_code == 201
        admin = made.json()["token"]
        assert admin.startswith("wf_a_") and made.json()["prefix"] == admin[:12]
        # From now on a token is needed, on loopback too.
        assert (await client.get("/api/alerts")).status_code == 401
        assert (await client.get("/api/whoami", headers=bearer(admin))).json()["name"] == "ana (admin)"
    assert ("anonymous@loopback", "token.created", "1") in await _audit(running)


async def test_the_open_bootstrap_never_applies_off_loopback(running: Running) -> None:
    guard = access.Access(running.sessions)
    request = Request({"type": "http", "method": "GET", "path": "/api/alerts", "headers": [],
                       "query_string": b"", "client": ("10.0.0.5", 40000)})
    with pytest.raises(HTTPException) as refused:
        await guard.caller(request)
    assert refused.value.status_code == 401
    loopback = Request({**request.scope, "client": ("::1", 40000)})
    assert (await guard.caller(loopback)).role == "admin"


async def test_open_mode_is_asked_of_the_database_once_per_window_and_ends_for_good(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared import store_access

    asked = []
    real = store_access.any_admin_token

    async def counted(session):  # type: ignore[no-untyped-def]
        asked.append(1)
        return await real(session)

    monkeypatch.setattr(store_access, "any_admin_token", counted)
    monkeypatch.setattr(access, "OPEN_MODE_RECHECK_S", 60.0)
    guard = access.Access(running.sessions)
    loopback = Request({"type": "http", "method": "POST", "path": "/ingest", "headers": [], "query_string": b"",
                        "client": ("127.0.0.1", 40000)})
    for _ in range(5):
        assert (await guard.caller(loopback)).anonymous
    assert len(asked) == 1  # one query for five requests
    await make_token(running.sessions, "lead", "admin")
    assert (await guard.caller(loopback)).anonymous  # within the window: still open
    monkeypatch.setattr(access, "OPEN_MODE_RECHECK_S", 0.0)
    guard._open_until = 0.0  # the window passes
    for _ in range(3):
        with pytest.raises(HTTPException) as refused:
            await guard.caller(loopback)
        assert refused.value.status_code == 401
    assert len(asked) == 2  # "an admin token exists" is never asked again


async def test_admin_manages_tokens_and_rules_and_every_change_is_audited(running: Running, base_url: str) -> None:
    admin = await make_token(running.sessions, "ana", "admin")
    async with httpx.AsyncClient(base_url=base_url, timeout=10, headers=bearer(admin)) as client:
        made = (await client.post("/api/tokens", json={"name": "night shift", "role": "officer"})).json()
        listed = (await client.get("/api/tokens")).json()
        assert [(t["name"], t["role"]) for t in listed] == [("ana", "admin"), ("night shift", "officer")]
        assert all("token" not in t and "token_hash" not in t for t in listed)
        officer = made["token"]
        assert (await client.get("/api/whoami", headers=bearer(officer))).json()["role"] == "officer"
        assert (await client.post("/api/tokens", json={"name": "x", "role": "root"})).status_code == 422
        revoked = await client.delete(f"/api/tokens/{made['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        gone = await client.get("/api/alerts", headers=bearer(officer))
        assert gone.status_code == 401 and "revoked" in gone.json()["detail"]
        assert (await client.delete("/api/tokens/999")).status_code == 404

        bad = await client.post("/api/rules", content=FIRST_RULE.replace("radius_km: 50", "radius_km: -5"))
        assert bad.status_code == 422
        assert (bad.json()["line"], bad.json()["field"]) == (9, "area.radius_km")
        assert bad.json()["detail"].startswith("api:ana:9: area.radius_km: must be greater than 0")
        wider = FIRST_RULE.replace("radius_km: 50", "radius_km: 80")
        stored = await client.post("/api/rules", content=wider, headers={"content-type": "application/yaml"})
        assert stored.status_code == 201, stored.text
        assert stored.json()["geofence"]["radius_km"] == 80
        assert (await client.post("/api/rules/issp-niamey-50km/disable")).json() == {
            "id": "issp-niamey-50km", "enabled": False}
        sub = await client.post("/api/subscriptions", json={"url": "http://127.0.0.1:9/hook", "name": "desk"})
        assert sub.status_code == 201 and sub.json()["secret"].startswith("whsec_")
        assert "secret" not in (await client.get("/api/subscriptions")).json()[0]

    audit = await _audit(running)
    assert ("ana", "token.created", str(made["id"])) in audit
    assert ("ana", "token.revoked", str(made["id"])) in audit
    assert ("ana", "rule.updated", "issp-niamey-50km") in audit
    assert ("ana", "rule.disabled", "issp-niamey-50km") in audit
    assert ("ana", "subscription.created", str(sub.json()["id"])) in audit


async def test_an_officer_silences_with_a_preview_and_expires_it(running: Running, base_url: str) -> None:
    officer = await make_token(running.sessions, "duty officer", "officer")
    await publish_logged(running, vbied_niamey_en())
    async with httpx.AsyncClient(base_url=base_url, timeout=10, headers=bearer(officer)) as client:
        alerts = await eventually(lambda: _alerts(client))
        matchers = {"rule_ids": ["issp-niamey-50km"], "countries": ["NE"]}
        preview = (await client.post("/api/silences/preview", json={"matchers": matchers})).json()
        assert [a["alert_id"] for a in preview] == [alerts[0]["alert_id"]]
        assert (await client.post("/api/silences/preview", json={"matchers": {"colour": ["red"]}})).status_code == 422

        no_reason = await client.post("/api/silences", json={"matchers": matchers, "reason": "", "duration": "2h"})
        assert no_reason.status_code == 422
        no_end = await client.post("/api/silences", json={"matchers": matchers, "reason": "exercise"})
        assert no_end.status_code == 422 and "duration" in no_end.json()["detail"]
        made = await client.post("/api/silences", json={"matchers": matchers, "reason": "FDS exercise near Niamey",
                                                        "duration": "2h"})
        assert made.status_code == 201, made.text
        silence = made.json()
        assert silence["created_by"] == "duty officer"
        active = (await client.get("/api/silences", params={"active": "true"})).json()
        assert [s["id"] for s in active] == [silence["id"]]
        expired = await client.delete(f"/api/silences/{silence['id']}")
        assert expired.status_code == 200 and expired.json()["expired_by"] == "duty officer"
        assert (await client.get("/api/silences", params={"active": "true"})).json() == []
        assert (await client.delete("/api/silences/999")).status_code == 404

    audit = await _audit(running)
    assert ("duty officer", "silence.created", str(silence["id"])) in audit
    assert ("duty officer", "silence.expired", str(silence["id"])) in audit


async def _alerts(client: httpx.AsyncClient) -> list:
    return (await client.get("/api/alerts")).json()


def test_tokens_name_their_role_and_only_their_hash_is_kept() -> None:
    made = access.new_token("officer")
    assert made.secret.startswith("wf_o_") and len(made.secret) >= 36
    assert made.digest == access.digest(made.secret) and made.secret not in made.digest
    assert access.new_token("officer").secret != made.secret
    assert access.allows("admin", "officer") and not access.allows("viewer", "officer")
    assert access.allows("viewer", "ingest") and not access.allows("ingest", "viewer")
    with pytest.raises(access.AccessError, match="unknown role 'root': choose ingest, viewer, officer or admin"):
        access.new_token("root")


def test_tokens_in_urls_are_masked_in_the_access_log() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/api/alerts/stream?token=wf_v_secret&x=1", "1.1", 200),
                               None)
    assert access.RedactTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /api/alerts/stream?token=***&x=1 HTTP/1.1" 200'


async def test_places_are_added_by_admins_only_audited_and_bad_fields_are_named(
    running: Running, base_url: str
) -> None:
    officer = await make_token(running.sessions, "duty officer", "officer")
    admin = await make_token(running.sessions, "gis lead", "admin")
    kandagou = {"name": "Kandagou", "lat": 14.62, "lon": 1.21, "country": "NE", "source": "1:200k sheet ND-31-XIV"}
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        denied = await client.post("/api/places", json=kandagou, headers=bearer(officer))
        assert (denied.status_code, denied.json()["detail"]) == (403, "role officer may not add places: needs admin")
        bad = await client.post("/api/places", json={**kandagou, "country": "N1"}, headers=bearer(admin))
        assert bad.status_code == 422 and "country" in bad.json()["detail"]
        added = await client.post("/api/places", json=kandagou, headers=bearer(admin))
        assert added.status_code == 201 and added.json()["created_by"] == "gis lead"
        again = await client.post("/api/places", json=kandagou, headers=bearer(admin))
        assert again.status_code == 422 and "already place" in again.json()["detail"]
        listed = await client.get("/api/places", headers=bearer(officer))
        assert [p["name"] for p in listed.json()] == ["Kandagou"]
        assert (await client.get("/api/places/unresolved", headers=bearer(officer))).json() == []
    assert ("gis lead", "place.added", str(added.json()["id"])) in await _audit(running)
