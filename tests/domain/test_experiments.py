"""The arms of a model A/B test and how visitors are dealt to them."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter

import pytest

from backend.domain.experiments import Arm, assign, bucket, check_arms, parse_arm
from backend.errors import InvalidInput

HALVES = (Arm("A", "efficientnet_lite0-imagenet", 50), Arm("B", "efficientnet_lite2-imagenet", 50))


def visitors(n: int, seed: int = 0) -> list[str]:
    """Random-looking visitor ids as the widget makes them (uuid4), reproducible."""
    return [str(uuid.UUID(int=(seed * n + i) * 0x9E3779B97F4A7C15 % 2**128, version=4)) for i in range(n)]


def test_parse_arm_reads_name_version_and_weight() -> None:
    assert parse_arm("A=efficientnet_lite0-imagenet:50") == Arm("A", "efficientnet_lite0-imagenet", 50)
    assert parse_arm("control=abc123") == Arm("control", "abc123", 1)
    # A version may hold a colon of its own: the weight is what follows the last one.
    assert parse_arm("B=ns:v2:30") == Arm("B", "ns:v2", 30)


@pytest.mark.parametrize(
    "text",
    ["A", "A=", "=v:50", "A=:50", "A=v:0", "A=v:-5", "A=v:x", "A=v:1001", "a b=v:5", "A=v:2.5", "x" * 33 + "=v"],
)
def test_parse_arm_refuses_bad_specs_naming_arm(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_arm(text)
    assert caught.value.extra["field"] == "arm"


def test_check_arms_wants_two_to_eight_distinct_names() -> None:
    assert check_arms(HALVES) == HALVES
    assert len(check_arms([HALVES[0], Arm("A2", HALVES[0].model_version, 1)])) == 2  # an A/A test
    with pytest.raises(InvalidInput, match="2 to 8 arms"):
        check_arms(HALVES[:1])
    with pytest.raises(InvalidInput, match="2 to 8 arms"):
        check_arms([Arm(f"a{i}", "v", 1) for i in range(9)])
    with pytest.raises(InvalidInput, match="A given twice"):
        check_arms([HALVES[0], Arm("A", "other", 5)])


def test_assignment_is_stable_for_a_visitor() -> None:
    ids = visitors(500)
    first = [assign("exp-1", HALVES, v).name for v in ids]
    assert [assign("exp-1", HALVES, v).name for v in ids] == first


def test_assignment_is_the_same_in_another_process() -> None:
    """No per-process salt (Python's hash() has one): a visitor keeps its arm across workers and restarts."""
    ids = visitors(50)
    here = [assign("exp-1", HALVES, v).name for v in ids]
    code = (
        "import sys; from backend.domain.experiments import Arm, assign;"
        "arms = (Arm('A', 'a', 50), Arm('B', 'b', 50));"
        "print(','.join(assign('exp-1', arms, v).name for v in sys.argv[1:]))"
    )
    there = subprocess.run([sys.executable, "-c", code, *ids], capture_output=True, text=True, check=True)
    assert there.stdout.strip().split(",") == here


def test_assignment_is_close_to_the_split_over_ten_thousand_visitors() -> None:
    ids = visitors(10_000)
    halves = Counter(assign("exp-1", HALVES, v).name for v in ids)
    # A fair coin over 10,000 visitors: the standard deviation is 50, so 4.5 of them is 225.
    assert abs(halves["A"] - 5_000) < 225, halves
    thirds = (Arm("A", "a", 20), Arm("B", "b", 30), Arm("C", "c", 50))
    split = Counter(assign("exp-2", thirds, v).name for v in ids)
    for arm in thirds:
        expected = 10_000 * arm.weight / 100
        assert abs(split[arm.name] - expected) < 4.5 * (expected * (1 - arm.weight / 100)) ** 0.5, split


def test_a_new_experiment_deals_the_visitors_afresh() -> None:
    """Visitors are not stuck in B for every later experiment: the two deals agree about half the time."""
    ids = visitors(4_000)
    same = sum(assign("exp-1", HALVES, v).name == assign("exp-2", HALVES, v).name for v in ids)
    assert abs(same - 2_000) < 4.5 * (4_000 * 0.25) ** 0.5, same


def test_bucket_spreads_over_the_unit_interval() -> None:
    points = [bucket("exp-1", v) for v in visitors(10_000)]
    assert all(0 <= p < 1 for p in points)
    deciles = Counter(int(p * 10) for p in points)
    assert all(abs(deciles[d] - 1_000) < 4.5 * 30 for d in range(10)), deciles
