"""Named data profiles: every knob that shapes the generated data, and the dataset fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any

from bench.errors import InputError

# Bump when the generators change what a given profile produces: the fingerprint changes with it,
# so a database seeded by an older generator is re-seeded instead of silently reused.
GENERATOR_VERSION = 3
GENERATORS = ("client", "server")


@dataclass(frozen=True)
class Profile:
    name: str
    users: int
    tasks_per_user: int
    seed: int = 42
    power_user_share: float = 0.1  # share of users who are power users (at least one)
    power_user_factor: int = 5  # power users have this many times the tasks
    completed_ratio: float = 0.70
    deleted_ratio: float = 0.03
    due_date_ratio: float = 0.60
    history_days: int = 730  # created_at spans this many days before the anchor date
    anchor_date: date = date(2026, 1, 1)  # "today" of the dataset: scenarios draw dates from it
    tag_vocabulary: int = 24
    tag_zipf_exponent: float = 1.1
    conversations_per_user: tuple[int, int] = (10, 30)
    messages_per_conversation: tuple[int, int] = (20, 500)
    generator: str = "client"  # "client" (NumPy, streamed COPY) or "server" (SQL on the server)

    @property
    def power_users(self) -> int:
        return max(1, round(self.users * self.power_user_share)) if self.users > 1 else 0

    def tasks_for_user(self, index: int) -> int:
        """Users 0..power_users-1 are the power users."""
        factor = self.power_user_factor if index < self.power_users else 1
        return self.tasks_per_user * factor

    @property
    def total_tasks(self) -> int:
        return sum(self.tasks_for_user(i) for i in range(self.users))

    def params(self) -> dict[str, Any]:
        data = asdict(self)
        data["anchor_date"] = self.anchor_date.isoformat()
        data["generator_version"] = GENERATOR_VERSION
        return data

    def fingerprint(self) -> str:
        """Identifies the data content: the same parameters always produce the same rows."""
        params = self.params()
        params.pop("name")  # a profile with overrides equal to another profile is the same data
        blob = json.dumps(params, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


PROFILES: dict[str, Profile] = {
    "ci": Profile(
        name="ci", users=4, tasks_per_user=2_000, conversations_per_user=(3, 6), messages_per_conversation=(20, 120)
    ),
    "default": Profile(name="default", users=20, tasks_per_user=10_000),
    "large": Profile(name="large", users=60, tasks_per_user=12_000),
}
DEFAULT_PROFILE = "default"  # the profile a command seeds when none is named


def get_profile(name: str, **overrides: Any) -> Profile:
    """A named profile with the given overrides (None means: keep the profile's value)."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise InputError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})") from None
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes.get("generator", "client") not in GENERATORS:
        raise InputError(f"--generate must be one of {', '.join(GENERATORS)}")
    for key in ("users", "tasks_per_user"):
        if key in changes and changes[key] < 1:
            raise InputError(f"--{key.replace('_', '-')} must be at least 1")
    return replace(profile, **changes)
