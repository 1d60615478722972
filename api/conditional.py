"""Conditional requests (RFC 9110 §13): `ETag` out, `If-Match` (strong) and `If-None-Match` (weak) in."""

from __future__ import annotations

import re

from api.problems import ApiProblem

_ETAG = re.compile(r'(?:W/)?"[\x21\x23-\x7e]*"')


def _tags(request, header: str) -> list[str] | None:
    """The entity tags a conditional header lists; `*` stays `*`. Anything that is not an entity tag
    matches nothing (so a malformed If-Match fails with 412, a malformed If-None-Match is a miss)."""
    value = request.headers.get(header)
    if value is None:
        return None
    return ["*"] if value.strip() == "*" else _ETAG.findall(value)


def if_match_version(request, *, etag: str, version: int) -> int | None:
    """The version `If-Match` pins the write to (None without the header). The caller hands it to the
    service, which re-checks it inside the write's transaction; a stale tag fails here already."""
    tags = _tags(request, "If-Match")
    if tags is None:
        return None
    if "*" in tags or etag in tags:  # strong comparison: a weak tag (W/"…") never matches
        return version
    raise ApiProblem(
        412,
        "version_mismatch",
        f"The record is at version {version} ({etag}); If-Match named another.",
        current_version=version,
    )


def not_modified(request, *, etag: str) -> bool:
    """Whether `If-None-Match` already names the current representation (answer 304)."""
    tags = _tags(request, "If-None-Match")
    if tags is None:
        return False
    return "*" in tags or etag.removeprefix("W/") in {t.removeprefix("W/") for t in tags}
