"""Standard Webhooks signatures: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`.

HMAC-SHA256 over `id.timestamp.body`, with the exact bytes that are sent. The id is stable across retries
(receivers de-duplicate on it); the timestamp is that of the attempt (receivers reject ±5 min).
"""

import base64
import secrets
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(body: str, secret: str, msg_id: str, timestamp: datetime) -> str:
    """The `webhook-signature` value for `body` (`v1,<base64>`)."""
    return Webhook(secret).sign(msg_id, timestamp, body)


def signed_headers(body: str, secret: str, msg_id: str, timestamp: datetime) -> dict[str, str]:
    """Every header a Standard Webhooks receiver needs to verify `body`."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": sign(body, secret, msg_id, timestamp),
        "content-type": "application/json",
    }
