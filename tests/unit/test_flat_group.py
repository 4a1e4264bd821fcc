"""The flat-group path of dispatch (no compiler) against the compiler, side by side."""

from __future__ import annotations

import pytest

from canvas import chain, dag, group
from canvas.core.dispatch import flat_group
from canvas.signature import Signature


def add(*args: int, **options: object) -> Signature:
    return Signature("proj.add", args, {}, dict(options))


def compiled(sig: group) -> tuple[list[dict[str, object]], dag.ResultSpec, list[object]]:
    workflow = dag.compile(sig)
    clusters = [[c.id, c.kind, list(c.members), c.join] for c in workflow.clusters]
    return [n.to_dict() for n in workflow.nodes], workflow.result, clusters


@pytest.mark.parametrize(
    "members",
    [
        [add(1, 1, task_id="a"), add(2, 2, task_id="b")],
        [
            add(1, task_id="a", queue="q", priority=3),
            add(task_id="b", countdown=5).set(immutable=True),
        ],
        [add(i, i, task_id=f"t{i}") for i in range(50)],
    ],
)
def test_a_flat_group_is_what_the_compiler_makes(members: list[Signature]) -> None:
    sig = group(members)
    sig.options["group_id"] = "g"
    flat = flat_group(sig, None, None, {}, 100)
    assert flat is not None
    nodes, result, clusters = compiled(sig)
    assert [n.to_dict() for n in flat.nodes] == nodes
    assert flat.result == result
    assert clusters == [["g", "group", [n.id for n in flat.nodes], None]]


def test_fresh_ids_have_the_same_shape() -> None:
    flat = flat_group(group([add(1, 1), add(2, 2)]), None, None, {}, 100)
    assert flat is not None
    assert len({flat.id, *(n.id for n in flat.nodes)}) == 3
    assert all(n.group == flat.id and n.inputs == () for n in flat.nodes)
    assert [m.id for m in flat.result.members] == [n.id for n in flat.nodes]


@pytest.mark.parametrize(
    ("sig", "args", "options"),
    [
        (group([add(1, 1), add(2, 2)]), (5,), {}),  # call arguments
        (group([add(1, 1), add(2, 2)]), None, {"queue": "q"}),  # call options
        (group([add(1, 1)], queue="q"), None, {}),  # the group's own options
        (group([add(1, 1, link=[add(9)])]), None, {}),  # a callback
        (group([add(1, 1, link_error=[add(9)])]), None, {}),  # an errback
        (group([add(1, 1), chain(add(1), add(2))]), None, {}),  # a nested canvas
        (group([add(1, 1), group([add(2, 2)])]), None, {}),  # a nested group
        (group([add(1, 1, task_id="x"), add(2, 2, task_id="x")]), None, {}),  # an id twice
        (group([]), None, {}),  # empty
        (group(add(i, i) for i in range(3)), None, {}),  # a generator
        (chain(add(1, 1), add(2)), None, {}),  # not a group
    ],
)
def test_anything_more_goes_to_the_compiler(sig: Signature, args: object, options: dict) -> None:
    assert flat_group(sig, args, None, options, 100) is None  # type: ignore[arg-type]


def test_more_members_than_the_limit_go_to_the_compiler() -> None:
    assert flat_group(group([add(i) for i in range(11)]), None, None, {}, 10) is None
