"""How old an application's keys are, by the server's ``createdAt``, and what a key-age policy asks for.

Orkes keys never expire: a policy (``keys rotate --all --older-than``, ``keyMaxAge`` in an
environment file, ``doctor --max-key-age``) compares the age of the ACTIVE keys with a limit. The
age is this machine's clock minus the server's ``createdAt``: a clock skew of seconds does not
matter for limits counted in days. Every function takes ``now`` so that tests can make keys old
without waiting.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from orkes_provision.access.changes import RotateKey
from orkes_provision.access.plan import Plan
from orkes_provision.access.state import ServerState
from orkes_provision.durations import format_duration
from orkes_provision.orkes.models import AccessKey


def created(key: AccessKey) -> datetime | None:
    """When the server says ``key`` was created (``createdAt`` is epoch milliseconds), if it says."""
    if key.created_at is None:
        return None
    return datetime.fromtimestamp(key.created_at / 1000, UTC)


def key_age(key: AccessKey, now: datetime) -> timedelta | None:
    made = created(key)
    return None if made is None else now - made


@dataclass(frozen=True)
class OldestKey:
    """The oldest ACTIVE key of an application; ``age`` is ``None`` when the server gives no ``createdAt``."""

    key_id: str
    age: timedelta | None

    def older_than(self, limit: timedelta) -> bool:
        # A key of unknown age may be as old as any: a policy that never rotated it would never hold.
        return self.age is None or self.age > limit

    def describe(self) -> str:
        return f"key {self.key_id} is {format_age(self.age)} old" if self.age is not None else \
            f"key {self.key_id} has no creation time on the server"


def oldest_active(keys: Iterable[AccessKey], now: datetime) -> OldestKey | None:
    """The ACTIVE key created first (one without ``createdAt`` counts as the oldest); ``None`` when none is ACTIVE."""
    active = [k for k in keys if k.status == "ACTIVE"]
    if not active:
        return None
    first = min(active, key=lambda k: (k.created_at is not None, k.created_at or 0, k.id))
    return OldestKey(first.id, key_age(first, now))


def format_age(age: timedelta | None) -> str:
    """An age as people say it: ``95 days``, ``1 day``, ``5 hours``, ``12 minutes``, ``40 seconds``."""
    if age is None:
        return "unknown"
    seconds = max(0, int(age.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def age_seconds(age: timedelta | None) -> int | None:
    """For JSON reports (durations are seconds in keys ending in ``Seconds``)."""
    return None if age is None else int(age.total_seconds())


def policy_text(limit: timedelta) -> str:
    """A limit as an environment file or an option writes it (``90d``, ``1h30m``)."""
    return format_duration(limit)


def plan_key_rotations(plan: Plan, state: ServerState, now: datetime) -> None:
    """Add a ``rotate_key`` change for each application whose ``keyMaxAge`` an ACTIVE key outlived.

    Only where the plan keeps the stored key (a key to be created is new anyway), and for the
    oldest ACTIVE key: a rotation retires every ACTIVE key, each no older than the first one made.
    """
    for app_plan in plan.apps:
        spec = app_plan.spec
        limit = spec.key_max_age
        current = state.apps.get(app_plan.app_id) if app_plan.app_id else None
        if limit is None or spec.store is None or app_plan.reused_key_id is None or current is None:
            continue
        oldest = oldest_active(current.keys, now)
        if oldest is not None and oldest.older_than(limit):
            app_plan.changes.append(RotateKey(app=spec.name, key_id=oldest.key_id, app_id=app_plan.app_id,
                                           reason=f"{oldest.describe()}, keyMaxAge {policy_text(limit)}"))
