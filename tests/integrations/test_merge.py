"""The per-field ownership policy, without a remote: ours, theirs, shared (three-way)."""

from __future__ import annotations

from typing import Any

import pytest

from tradeflow.integrations.merge import plan_merge, plan_pull
from tradeflow.integrations.plugins import Ownership


def owner(policy: dict[str, Ownership]) -> Any:
    return lambda name: policy.get(name, "shared")


BASE = {"total": "10.00", "notes": "", "status": "issued"}


def test_nothing_changed_writes_nothing() -> None:
    plan = plan_merge(ours=BASE, theirs=BASE, last_ours=BASE, last_theirs=BASE, ownership=owner({}))
    assert plan.writes == {}
    assert plan.clean


def test_only_we_changed_a_shared_field_writes_it() -> None:
    ours = {**BASE, "status": "paid"}
    plan = plan_merge(ours=ours, theirs=BASE, last_ours=BASE, last_theirs=BASE, ownership=owner({}))
    assert plan.writes == {"status": "paid"}


def test_only_they_changed_a_shared_field_keeps_theirs() -> None:
    theirs = {**BASE, "notes": "call before delivery"}
    plan = plan_merge(
        ours=BASE, theirs=theirs, last_ours=BASE, last_theirs=BASE, ownership=owner({})
    )
    assert plan.writes == {}
    assert plan.kept_theirs == ["notes"]


def test_both_changed_a_shared_field_is_a_conflict_and_nothing_is_written() -> None:
    ours = {**BASE, "status": "paid"}
    theirs = {**BASE, "status": "disputed"}
    plan = plan_merge(
        ours=ours, theirs=theirs, last_ours=BASE, last_theirs=BASE, ownership=owner({})
    )
    assert plan.writes == {}
    [conflict] = plan.conflicts
    assert (conflict.field, conflict.base, conflict.ours, conflict.theirs) == (
        "status",
        "issued",
        "paid",
        "disputed",
    )


def test_both_changed_to_the_same_value_is_no_conflict() -> None:
    both = {**BASE, "status": "paid"}
    plan = plan_merge(ours=both, theirs=both, last_ours=BASE, last_theirs=BASE, ownership=owner({}))
    assert plan.clean
    assert plan.writes == {}


def test_an_owned_field_is_written_back_even_after_their_edit() -> None:
    theirs = {**BASE, "total": "9.00"}
    plan = plan_merge(
        ours=BASE,
        theirs=theirs,
        last_ours=BASE,
        last_theirs=BASE,
        ownership=owner({"total": "ours"}),
    )
    assert plan.writes == {"total": "10.00"}


def test_a_field_they_own_is_never_written_after_creation() -> None:
    ours = {**BASE, "notes": "ours"}
    theirs = {**BASE, "notes": "theirs"}
    plan = plan_merge(
        ours=ours,
        theirs=theirs,
        last_ours=BASE,
        last_theirs=BASE,
        ownership=owner({"notes": "theirs"}),
    )
    assert plan.writes == {}
    assert plan.clean


def test_fields_held_by_an_open_conflict_are_left_alone() -> None:
    ours = {**BASE, "status": "paid", "total": "11.00"}
    theirs = {**BASE, "status": "disputed"}
    plan = plan_merge(
        ours=ours,
        theirs=theirs,
        last_ours=BASE,
        last_theirs=BASE,
        ownership=owner({}),
        held=frozenset({"status"}),
    )
    assert plan.writes == {"total": "11.00"}
    assert plan.clean


@pytest.mark.parametrize(
    ("policy", "written"), [("ours", True), ("theirs", False), ("shared", False)]
)
def test_a_field_they_removed(policy: Ownership, written: bool) -> None:
    # They dropped a field we had sent: ours restores it; theirs and shared respect the removal.
    plan = plan_merge(
        ours={"x": 1},
        theirs={},
        last_ours={"x": 1},
        last_theirs={"x": 1},
        ownership=owner({"x": policy}),
    )
    assert ("x" in plan.writes) is written
    assert plan.clean


# -- the pull side ---------------------------------------------------------------------------

PULL_POLICY: dict[str, Ownership] = {"currency": "ours", "tax_id": "theirs", "name": "shared"}
CUSTOMER = {"name": "Acme", "currency": "EUR", "tax_id": None}


def pull(ours: dict[str, Any], theirs: dict[str, Any], base: dict[str, Any] = CUSTOMER) -> Any:
    return plan_pull(
        ours=ours, theirs=theirs, last_ours=base, last_theirs=base, ownership=owner(PULL_POLICY)
    )


def test_pull_takes_over_theirs_and_ignores_ours() -> None:
    plan = pull(CUSTOMER, {**CUSTOMER, "tax_id": "DE1", "currency": "USD"})
    assert plan.apply == {"tax_id": "DE1"}
    assert plan.ignored == ["currency"]
    assert plan.conflicts == []


def test_pull_of_a_theirs_field_wins_over_our_local_edit() -> None:
    plan = pull({**CUSTOMER, "tax_id": "OURS"}, {**CUSTOMER, "tax_id": "THEIRS"})
    assert plan.apply == {"tax_id": "THEIRS"}


def test_pull_of_a_shared_field_only_they_changed_is_taken_over() -> None:
    plan = pull(CUSTOMER, {**CUSTOMER, "name": "Acme GmbH"})
    assert plan.apply == {"name": "Acme GmbH"}


def test_pull_of_a_shared_field_only_we_changed_is_left_for_the_push() -> None:
    plan = pull({**CUSTOMER, "name": "Acme Group"}, CUSTOMER)
    assert plan.apply == {}
    assert plan.left_for_push == ["name"]


def test_pull_of_a_shared_field_both_changed_is_a_conflict_unless_held() -> None:
    ours, theirs = {**CUSTOMER, "name": "Ours"}, {**CUSTOMER, "name": "Theirs"}
    plan = pull(ours, theirs)
    assert plan.apply == {}
    assert [(c.field, c.base, c.ours, c.theirs) for c in plan.conflicts] == [
        ("name", "Acme", "Ours", "Theirs")
    ]
    held = plan_pull(
        ours=ours,
        theirs=theirs,
        last_ours=CUSTOMER,
        last_theirs=CUSTOMER,
        ownership=owner(PULL_POLICY),
        held=frozenset({"name"}),
    )
    assert held.conflicts == []
    assert held.apply == {}


def test_pull_leaves_fields_the_record_does_not_carry() -> None:
    plan = pull(CUSTOMER, {"name": "Acme"})
    assert plan.apply == {}
    assert plan.conflicts == []
