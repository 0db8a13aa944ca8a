"""Groups onto rulers: deterministic, spread, and a change of N moves only the groups whose owner changed."""

from shardmon.rules import assignment

KEYS = [f"/rules/f{i % 3}.yml;g{i}" for i in range(600)]


def test_every_group_has_one_owner_among_the_rulers():
    spread = assignment.assign(KEYS, 3)
    assert sorted(spread) == ["ruler-0", "ruler-1", "ruler-2"]
    assert sorted(k for keys in spread.values() for k in keys) == sorted(KEYS)
    assert all(150 <= len(keys) <= 250 for keys in spread.values()), {r: len(k) for r, k in spread.items()}
    for rid, keys in spread.items():
        assert assignment.owned(KEYS, rid, 3) == set(keys)


def test_the_owner_depends_only_on_key_and_n():
    assert [assignment.owner(k, 4) for k in KEYS] == [assignment.owner(k, 4) for k in reversed(KEYS)][::-1]


def test_scaling_up_moves_about_a_quarter_and_only_to_the_new_ruler():
    moved = assignment.moves(KEYS, 3, 4)
    assert 0.18 * len(KEYS) <= len(moved) <= 0.32 * len(KEYS)
    assert {new for _, new in moved.values()} == {"ruler-3"}
    # Scaling back moves exactly those back to where they were.
    back = assignment.moves(KEYS, 4, 3)
    assert back == {k: (new, old) for k, (old, new) in moved.items()}


def test_scaling_down_moves_only_the_removed_rulers_groups():
    moved = assignment.moves(KEYS, 4, 3)
    assert {old for old, _ in moved.values()} == {"ruler-3"}
    assert len(moved) == len(assignment.assign(KEYS, 4)["ruler-3"])
