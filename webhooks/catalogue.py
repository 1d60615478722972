"""The event catalogue: every webhook event type, what it means and an example of its `data`.

Each delivery's body is the event — `{"id", "object": "event", "type", "created", "livemode", "data"}`,
the same object `/api/v1/events` lists for record changes (its version, ENVELOPE_VERSION, in the
`Tessera-Event-Version` request header). `data.object` is the object the event is about; a change may add
`changed_fields` (records) or `previous_attributes` (what it was before). Receivers dedupe on the
`webhook-id` header, the event's id. The OpenAPI document's `webhooks` section and the partner docs are
generated from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENVELOPE_VERSION = "2026-12-07"

_RECORD = {
    "object": {
        "object": "record",
        "id": "01JD3X8Q6N2ZK4F7T9W1B5C8HY",
        "collection": "customers",
        "version": 3,
        "data": {"name": "Ada Lovelace", "email": "ada@example.com", "tier": "pro"},
        "deleted": False,
        "livemode": True,
        "created_at": "2026-01-30T09:12:40.001000Z",
        "updated_at": "2026-02-02T17:04:11.250000Z",
    },
    "changed_fields": ["tier"],
}
_COLLECTION = {
    "object": "collection",
    "slug": "customers",
    "name": "Customers",
    "description": "Everyone who bought from us",
    "fields": [{"key": "name", "type": "text", "required": True}, {"key": "tier", "type": "choice"}],
    "livemode": True,
}
_MEMBER = {"object": "member", "id": "42", "email": "grace@example.com", "role": "manager"}
_DEVICE = {"object": "device", "id": "5", "name": "Warehouse phone", "role": "manager", "user": "grace@example.com"}
_API_KEY = {"object": "api_key", "id": "17", "name": "Warehouse sync", "prefix": "tsk_live_Ab3d…9xYz", "mode": "live"}


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    example: dict = field(default_factory=dict)

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]


CATALOGUE: dict[str, EventType] = {
    e.name: e
    for e in [
        EventType("record.created", "A record was created (console, API, import or a phone).", _RECORD),
        EventType("record.updated", "A record changed; `changed_fields` lists the fields that did.", _RECORD),
        EventType("record.deleted", "A record was deleted; `data.object` is its last state.", _RECORD),
        EventType("collection.created", "A collection was created.", {"object": _COLLECTION}),
        EventType("collection.updated", "A collection's name, description or fields changed.", {"object": _COLLECTION}),
        EventType("collection.deleted", "A collection was deleted.", {"object": {**_COLLECTION, "deleted": True}}),
        EventType(
            "member.invited",
            "Someone was invited to the workspace.",
            {"object": {**_MEMBER, "object": "invitation", "id": "9", "expires_at": "2026-02-09T17:04:11+00:00"}},
        ),
        EventType("member.joined", "An invitation was accepted: a new member.", {"object": _MEMBER}),
        EventType(
            "member.role_changed",
            "A member's role changed; `previous_attributes.role` is the one before.",
            {"object": _MEMBER, "previous_attributes": {"role": "viewer"}},
        ),
        EventType("member.removed", "A member was removed from the workspace.", {"object": _MEMBER}),
        EventType("api_key.created", "An API key was created.", {"object": _API_KEY}),
        EventType(
            "api_key.rotated",
            "An API key was rotated: `rotated_to` is its replacement; the old key works until `expires_at`.",
            {"object": {**_API_KEY, "rotated_to": "18", "expires_at": "2026-02-03T17:04:11+00:00"}},
        ),
        EventType("api_key.revoked", "An API key was revoked and stops working at once.", {"object": _API_KEY}),
        EventType(
            "device.paired",
            "A phone was paired with the workspace (it syncs records from now on).",
            {"object": _DEVICE},
        ),
        EventType(
            "device.revoked", "A paired phone was revoked; its token stops working at once.", {"object": _DEVICE}
        ),
        EventType(
            "subject.erased",
            "A data subject (a customer, or a member) was erased on their request (GDPR art. 17, CCPA right to "
            "delete). `records` lists the records erased (each also sent as `record.deleted` without values): "
            "erase your own copies. It names no one: no e-mail, name or other value is ever in it.",
            {
                "object": {
                    "object": "subject_erasure",
                    "request": "dsr_01jd3x8q6n2zk4f7t9w1b5c8hy",
                    "records": [{"collection": "customers", "id": "01JD3X8Q6N2ZK4F7T9W1B5C8HY"}],
                    "member_erased": False,
                }
            },
        ),
        EventType(
            "test.ping",
            "Sent when you press “Send test event”; nothing happened in the workspace.",
            {
                "object": {
                    "object": "test",
                    "message": "Hello from Tessera",
                    "endpoint": "ep_01jd3x8q6n2zk4f7t9w1b5c8hy",
                }
            },
        ),
    ]
}
EVENT_TYPES = tuple(CATALOGUE)
GROUPS = tuple(dict.fromkeys(e.group for e in CATALOGUE.values()))


def event_example(event: EventType) -> dict:
    """A whole example body of an event of this type."""
    record = event.group == "record"
    return {
        "id": "evt_1042" if record else "evt_01jd3x8q6n2zk4f7t9w1b5c8hy",
        "object": "event",
        "type": event.name,
        "created": "2026-02-02T17:04:11.250000Z",
        "livemode": True,
        "data": event.example,
    }


def event_type_filter_valid(value: str) -> bool:
    """True for a catalogue type or a group wildcard like `record.*` (an endpoint's filter entries)."""
    return value in CATALOGUE or (value.endswith(".*") and value[:-2] in GROUPS)
