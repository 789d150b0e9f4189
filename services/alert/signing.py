"""Standard Webhooks signatures: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`.

HMAC-SHA256 over `id.timestamp.body`, with the exact bytes that are sent. The id is stable across retries
(receivers de-duplicate on it); the timestamp is that of the attempt (receivers reject ±5 min). During a secret
rotation the header carries one signature per secret, space-separated, as Standard Webhooks allows, so a
receiver verifying with either the old or the new secret succeeds.
"""

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(body: str, secret: str, msg_id: str, timestamp: datetime) -> str:
    """The `webhook-signature` value for `body` (`v1,<base64>`)."""
    return Webhook(secret).sign(msg_id, timestamp, body)


def signed_headers(body: str, secret: str | Sequence[str], msg_id: str, timestamp: datetime) -> dict[str, str]:
    """Every header a Standard Webhooks receiver needs to verify `body`; one signature per secret given."""
    keys = [secret] if isinstance(secret, str) else list(secret)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(sign(body, key, msg_id, timestamp) for key in keys),
        "content-type": "application/json",
    }
