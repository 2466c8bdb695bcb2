"""Per-field three-way merge between our document and the remote's record.

For every mapped field we know three values: what we pushed last time
(`last_ours`), what the remote held after that push (`last_theirs`), and
now `ours` and `theirs`. Ownership decides what happens:

* **ours** — Tradeflow is the source of truth (amounts, numbers, currency):
  whenever the remote differs, our value is written back;
* **theirs** — set when the record is created, then the remote's to keep
  (a clerk's notes, an internal cost centre): never written again;
* **shared** — the side that changed wins; if *both* changed it to different
  values that is a real conflict: neither is written, and the conflict goes
  to the queue with both versions until someone resolves it.

The function is pure so the policy is tested exhaustively without a remote.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tradeflow.integrations.plugins import Ownership


@dataclass(frozen=True, slots=True)
class FieldConflict:
    field: str
    base: Any  # the value both sides last agreed on (what the remote held after our last push)
    ours: Any
    theirs: Any


@dataclass(slots=True)
class MergePlan:
    writes: dict[str, Any] = field(default_factory=dict)  # remote field → value to send
    conflicts: list[FieldConflict] = field(default_factory=list)
    kept_theirs: list[str] = field(default_factory=list)  # remote edits we respected

    @property
    def clean(self) -> bool:
        return not self.conflicts


_MISSING = object()


def plan_merge(
    *,
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    last_ours: Mapping[str, Any] | None,
    last_theirs: Mapping[str, Any] | None,
    ownership: Callable[[str], Ownership],
    held: frozenset[str] = frozenset(),
) -> MergePlan:
    """What to write to the remote, and which fields conflict.

    `held` names fields with an open conflict: they are neither written nor
    re-reported until the conflict is resolved.
    """
    plan = MergePlan()
    base_ours = last_ours or {}
    base_theirs = last_theirs or {}
    for name, our_value in ours.items():
        their_value = theirs.get(name, _MISSING)
        if their_value == our_value or name in held:
            continue
        owner = ownership(name)
        side = _standing(owner, name, our_value, their_value, base_ours, base_theirs)
        if side == "ours":
            plan.writes[name] = our_value
        elif side == "both":
            plan.conflicts.append(
                FieldConflict(
                    field=name,
                    base=base_theirs.get(name),
                    ours=our_value,
                    theirs=None if their_value is _MISSING else their_value,
                )
            )
        # A field they own counts as kept only where the remote carries it; a shared one they
        # dropped since the last sync is a change of theirs like any other.
        elif owner == "shared" or their_value is not _MISSING:
            plan.kept_theirs.append(name)
    return plan


@dataclass(slots=True)
class PullPlan:
    """What a pulled record means for our document, field by field."""

    apply: dict[str, Any] = field(default_factory=dict)  # remote field → value to take over
    conflicts: list[FieldConflict] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # ours-owned fields they changed
    left_for_push: list[str] = field(default_factory=list)  # shared fields only we changed


def plan_pull(
    *,
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    last_ours: Mapping[str, Any] | None,
    last_theirs: Mapping[str, Any] | None,
    ownership: Callable[[str], Ownership],
    held: frozenset[str] = frozenset(),
) -> PullPlan:
    """The mirror of `plan_merge` for a record pulled from the remote.

    * **theirs** — their value is taken over whenever it differs from ours;
    * **ours** — ignored: our value stands (the next push writes it back);
    * **shared** — if only they changed it since the last sync, theirs is taken over; if only
      we did, it is left for the push side; if both did, to different values, it is the same
      conflict the push side would find.

    Fields the remote record does not carry are left alone (a partial record is not a
    deletion); `held` fields (open conflict) are neither applied nor re-reported.
    """
    plan = PullPlan()
    base_ours = last_ours or {}
    base_theirs = last_theirs or {}
    for name, their_value in theirs.items():
        if name not in ours or name in held:
            continue
        our_value = ours[name]
        if their_value == our_value:
            continue
        owner = ownership(name)
        side = _standing(owner, name, our_value, their_value, base_ours, base_theirs)
        if side == "theirs":
            plan.apply[name] = their_value
        elif side == "both":
            plan.conflicts.append(
                FieldConflict(
                    field=name, base=base_theirs.get(name), ours=our_value, theirs=their_value
                )
            )
        elif owner == "ours":
            plan.ignored.append(name)
        else:
            plan.left_for_push.append(name)
    return plan


def _standing(
    owner: Ownership,
    name: str,
    our_value: Any,
    their_value: Any,
    base_ours: Mapping[str, Any],
    base_theirs: Mapping[str, Any],
) -> Literal["ours", "theirs", "both"]:
    """Whose value of a field the two sides disagree on stands — the same rule for a push and
    a pull: the owner's; for a shared field, the side that changed it since the last sync
    (ours when neither did), and `both` (a conflict) when each did."""
    if owner != "shared":
        return owner
    we_changed = base_ours.get(name, _MISSING) != our_value
    they_changed = base_theirs.get(name, _MISSING) != their_value
    if we_changed and they_changed:
        return "both"
    return "theirs" if they_changed else "ours"
