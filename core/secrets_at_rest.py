"""Secrets the server must reuse (webhook signing secrets, identity providers' client secrets), encrypted
at rest with Fernet.

The key comes from the setting TESSERA_SECRETS_KEY: one or more comma-separated passphrases or Fernet
keys, the first encrypts and all decrypt (so the key itself can be rotated). Unset, it is derived
from SECRET_KEY with HKDF, so a new installation needs no extra configuration.
"""

from __future__ import annotations

import base64
import functools
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

# cryptography (its OpenSSL build, ~7 MB resident) loads with the first secret encrypted or decrypted,
# not with the app: a desktop or a worker that sends no webhooks never pays for it.

_HKDF_INFO = b"tessera:secrets-at-rest:v1"


class SecretUndecryptable(ValueError):
    """The stored secret was encrypted with a key this installation no longer has."""


def _fernet_key(material: str) -> bytes:
    """A Fernet key as given, or one derived from any passphrase with HKDF-SHA256."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    raw = material.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32 and len(raw) == 44:
            return raw
    except ValueError:
        pass
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(raw)
    return base64.urlsafe_b64encode(derived)


@functools.cache
def _fernet_for(configured: str) -> MultiFernet:
    from cryptography.fernet import Fernet, MultiFernet

    keys = [k for k in configured.split(",") if k.strip()]
    return MultiFernet([Fernet(_fernet_key(k)) for k in keys])


def _fernet() -> MultiFernet:
    configured = getattr(settings, "TESSERA_SECRETS_KEY", None) or settings.SECRET_KEY
    return _fernet_for(configured)


def secret_encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def secret_decrypt(token: str) -> str:
    from cryptography.fernet import InvalidToken

    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUndecryptable("This secret cannot be decrypted with the configured TESSERA_SECRETS_KEY.") from exc
