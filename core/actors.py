"""Who does something: a member (user), an API key, a paired device, the system, or an anonymous visitor.

Services take `actor: Actor | Principal` — a typed Actor, or one of the objects that act (a member, an
API key, a device: each has `as_actor()`). `Actor.of` turns either into an Actor. An Actor carries what
permission checks need (the role, or a key's scopes and data set), so rbac can decide from it alone.

Records keep who last changed them as a short stamp (`Actor.stamp` / `Actor.from_stamp`, the one codec).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class ActorType(StrEnum):
    USER = "user"
    API_KEY = "api_key"
    DEVICE = "device"
    SYSTEM = "system"
    ANONYMOUS = "anonymous"


ACTOR_TYPE_LABELS = {
    ActorType.USER: "User",
    ActorType.API_KEY: "API key",
    ActorType.DEVICE: "Device",
    ActorType.SYSTEM: "System",
    ActorType.ANONYMOUS: "Anonymous",
}


@runtime_checkable
class Principal(Protocol):
    """An object that acts: a member, an API key, a paired device."""

    def as_actor(self) -> Actor: ...


@dataclass(frozen=True)
class Actor:
    type: ActorType
    id: str = ""
    label: str = ""
    # What permission checks read: a member's or device's role; an API key's scopes and data set.
    role: str | None = None
    scopes: frozenset[str] | None = None
    livemode: bool | None = None
    # The member, key or device itself (not part of the actor's identity).
    principal: Any = field(default=None, compare=False, repr=False, hash=False)

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(ActorType.SYSTEM, "", label)

    @classmethod
    def anonymous(cls, label: str = "") -> Actor:
        return cls(ActorType.ANONYMOUS, "", label[:255])

    @classmethod
    def of(cls, value: Actor | Principal | None) -> Actor:
        """An Actor for whatever acts: an Actor as is, a principal's own, None = the system, and
        anything else (an anonymous request's user) anonymous."""
        if isinstance(value, Actor):
            return value
        if value is None:
            return cls.system()
        as_actor = getattr(value, "as_actor", None)
        if as_actor is not None and getattr(value, "is_authenticated", True):
            return as_actor()
        return cls.anonymous()

    @property
    def is_system(self) -> bool:
        return self.type == ActorType.SYSTEM

    def stamp(self) -> str:
        """The short form records keep of who changed them."""
        return f"{self.type}:{self.id}:{self.label}"[:300]

    @classmethod
    def from_stamp(cls, stamp: str) -> Actor:
        kind, _, rest = (stamp or "").partition(":")
        ident, _, label = rest.partition(":")
        try:
            return cls(ActorType(kind), ident, label)
        except ValueError:
            return cls.anonymous(stamp or "")

    @property
    def display(self) -> str:
        """How the console names the actor to a person."""
        return self.label or ACTOR_TYPE_LABELS.get(self.type, str(self.type))
