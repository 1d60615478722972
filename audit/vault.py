"""The audit vault: personal values are sealed per data subject before they enter the hash chain.

A sealed value is `{"$vault": <subject>, "ct": <Fernet token>}`; the chain hashes that, never the
clear value. `vault_shred(subjects)` destroys the subjects' keys (crypto-shredding): their sealed
values stay in the chain, which still verifies, and are unrecoverable from then on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit.models import AuditVaultKey, AuditVaultShred
from core.secrets_at_rest import secret_decrypt, secret_encrypt

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

# cryptography loads with the first value sealed or opened, not at start: the desktop's idle memory
# (tests/desktop/test_memory.py) counts every library loaded before it is used.

ERASED = "[erased]"
MARK = "$vault"
EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def email_subject(email: str) -> str:
    """The vault subject of an e-mail address seen outside a member's own events (an invitation, a
    failed log-in): a keyed hash of the address, so the vault's subject names hold no address."""
    digest = hmac.new(settings.SECRET_KEY.encode(), b"vault-email:" + email.strip().lower().encode(), hashlib.sha256)
    return "email:" + digest.hexdigest()


def text_subject(text: str) -> str:
    """The subject of the first e-mail address in `text`, or "" when it holds none."""
    found = EMAIL.search(text or "")
    return email_subject(found.group(0)) if found else ""


def _key_get_or_create(subject: str, cache: dict[str, Fernet] | None = None) -> Fernet:
    from cryptography.fernet import Fernet

    if cache is not None and subject in cache:
        return cache[subject]
    key_encrypted = AuditVaultKey.objects.filter(subject=subject).values_list("key_encrypted", flat=True).first()
    if key_encrypted is None:
        key_encrypted = _key_insert(subject, secret_encrypt(Fernet.generate_key().decode()))
    fernet = Fernet(secret_decrypt(key_encrypted).encode())
    if cache is not None:
        cache[subject] = fernet
    return fernet


def _key_insert(subject: str, key_encrypted: str) -> str:
    """The subject's new key, or the one a concurrent writer made first: one statement, no savepoint
    (ON CONFLICT ... RETURNING: PostgreSQL, and SQLite since 3.35). A record's first write makes its key,
    so this is on every create's path."""
    table = connection.ops.quote_name(AuditVaultKey._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (subject, key_encrypted, created_at) VALUES (%s, %s, %s) "  # noqa: S608
            "ON CONFLICT (subject) DO NOTHING RETURNING key_encrypted",
            [subject, key_encrypted, connection.ops.adapt_datetimefield_value(timezone.now())],
        )
        row = cursor.fetchone()
    if row is not None:
        return row[0]
    return AuditVaultKey.objects.values_list("key_encrypted", flat=True).get(subject=subject)


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and MARK in value and "ct" in value


def value_seal(subject: str, value: Any, *, cache: dict[str, Fernet] | None = None) -> dict[str, str]:
    token = _key_get_or_create(subject, cache).encrypt(json.dumps(value, default=str).encode())
    return {MARK: subject, "ct": token.decode()}


def changes_seal(subject: str, changes: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """`changes` with each value under the given top-level keys (e.g. "before", "after") sealed."""
    cache: dict[str, Fernet] = {}
    out = dict(changes)
    for path in paths:
        part = out.get(path)
        if isinstance(part, dict):
            out[path] = {k: value_seal(subject, v, cache=cache) for k, v in part.items()}
    return out


def emails_seal(value: Any, *, cache: dict[str, Fernet] | None = None) -> Any:
    """`value` with each string holding an e-mail address sealed under that address's subject
    (values sealed already are left as they are)."""
    cache = {} if cache is None else cache
    if is_sealed(value):
        return value
    if isinstance(value, dict):
        return {k: emails_seal(v, cache=cache) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [emails_seal(v, cache=cache) for v in value]
    if isinstance(value, str) and (subject := text_subject(value)):
        return value_seal(subject, value, cache=cache)
    return value


def value_open(sealed: dict[str, str], *, keys: dict[str, Fernet | None]) -> Any:
    from cryptography.fernet import Fernet, InvalidToken

    subject = sealed[MARK]
    if subject not in keys:
        row = AuditVaultKey.objects.filter(subject=subject).first()
        keys[subject] = Fernet(secret_decrypt(row.key_encrypted).encode()) if row else None
    fernet = keys[subject]
    if fernet is None:
        return ERASED
    try:
        return json.loads(fernet.decrypt(sealed["ct"].encode()))
    except InvalidToken:
        return ERASED  # sealed under a key that was shredded and later made anew


def changes_open(changes: Any, *, keys: dict[str, Fernet | None] | None = None) -> Any:
    """`changes` as the viewer shows it: sealed values opened, erased ones as "[erased]"."""
    keys = {} if keys is None else keys
    if is_sealed(changes):
        return value_open(changes, keys=keys)
    if isinstance(changes, dict):
        return {k: changes_open(v, keys=keys) for k, v in changes.items()}
    if isinstance(changes, list):
        return [changes_open(v, keys=keys) for v in changes]
    return changes


def vault_shred(subjects: Iterable[str]) -> int:
    """Destroy the subjects' keys (in the caller's transaction); returns how many keys were destroyed."""
    subjects = list(dict.fromkeys(subjects))
    if not subjects:
        return 0
    deleted, _ = AuditVaultKey.objects.filter(subject__in=subjects).delete()
    AuditVaultShred.objects.bulk_create([AuditVaultShred(subject=s) for s in subjects], ignore_conflicts=True)
    return deleted
