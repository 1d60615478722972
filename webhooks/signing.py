"""Standard Webhooks signatures (https://www.standardwebhooks.com), made with the `standardwebhooks`
library that partners verify with: `webhook-id`, `webhook-timestamp`, and `webhook-signature` holding
one `v1,<base64 HMAC-SHA256>` per valid secret (two while a rotation's overlap lasts)."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


def secret_new() -> str:
    """A new signing secret, `whsec_` + base64 of 24 random bytes (the form Standard Webhooks uses)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature_header(*, secrets_valid: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """`v1,<sig>` for each secret, space-separated (receivers accept any one that verifies)."""
    if not secrets_valid:
        raise ValueError("An endpoint needs at least one valid secret to sign with.")
    return " ".join(Webhook(s).sign(msg_id=msg_id, timestamp=timestamp, data=body) for s in secrets_valid)


def headers_signed(*, secrets_valid: list[str], msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers for one request."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature_header(
            secrets_valid=secrets_valid, msg_id=msg_id, timestamp=timestamp, body=body
        ),
    }
