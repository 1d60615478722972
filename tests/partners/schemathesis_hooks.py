"""schemathesis hooks for the fuzzing run (tests/partners/test_schemathesis.py).

Hypothesis re-sends identical requests on purpose (replaying and shrinking examples). With the same
Idempotency-Key such a request is — correctly — answered with the first response, also after the
resource it created was deleted; the stateful checks then report a created resource that cannot be
found. So every positive call that carries a well-formed key gets a key of its own. Negative cases are
left exactly as generated: changing them would make schemathesis re-validate the case as positive and
send headers it meant to leave out. Replays themselves are tested in tests/api/test_idempotency.py.
"""

from __future__ import annotations

import re
import uuid

import schemathesis

WELL_FORMED = re.compile(r"[\x21-\x7e]{1,255}")


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return
    for name in list(case.headers or {}):
        if name.lower() == "idempotency-key" and WELL_FORMED.fullmatch(str(case.headers[name])):
            case.headers[name] = str(uuid.uuid4())
