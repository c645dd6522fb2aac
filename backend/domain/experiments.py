"""Model A/B tests: the arms (a name, a model version, a share of the visitors) and which arm a visitor sees.

A visitor's arm comes from a stable hash of the experiment and the visitor id, so the same visitor sees the
same arm on every page and in every process, and a new experiment deals the visitors afresh.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from backend.errors import InvalidInput

ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
MAX_ARMS = 8
_SPACE = 2**64  # the visitor's hash read as a 64-bit number, placed in [0, 1)


@dataclass(frozen=True)
class Arm:
    name: str
    model_version: str
    weight: int  # a share of the visitors: the weights of an experiment need not sum to 100


A = TypeVar("A", bound=Arm)  # an arm, or one that also names its collection


def parse_arm(text: str) -> Arm:
    """`A=efficientnet_lite0-imagenet:50` -> Arm("A", "efficientnet_lite0-imagenet", 50); the weight defaults
    to 1 (`A=VERSION`). InvalidInput naming `arm` otherwise."""
    name, sep, rest = text.partition("=")
    if not sep or not rest:
        raise InvalidInput("arm", f"{text!r} is not NAME=VERSION[:WEIGHT]")
    if not ARM_NAME.match(name):
        raise InvalidInput("arm", f"arm name {name!r}: letters, digits, '_', '.', '-', at most 32")
    version, sep, weight_text = rest.rpartition(":")
    if not sep:
        version, weight_text = rest, "1"
    if not version:
        raise InvalidInput("arm", f"{text!r} names no model version")
    if not weight_text.isdigit() or not 1 <= int(weight_text) <= 1000:
        raise InvalidInput("arm", f"{text!r}: the weight must be a whole number from 1 to 1000")
    return Arm(name, version, int(weight_text))


def check_arms(arms: Sequence[Arm]) -> tuple[Arm, ...]:
    """Two to MAX_ARMS arms with distinct names; two arms may share a version (an A/A test)."""
    if not 2 <= len(arms) <= MAX_ARMS:
        raise InvalidInput("arm", f"an experiment has 2 to {MAX_ARMS} arms, not {len(arms)}")
    names = [arm.name for arm in arms]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInput("arm", f"arm names must differ: {', '.join(twice)} given twice")
    return tuple(arms)


def bucket(experiment: str, visitor_id: str) -> float:
    """Where a visitor falls in [0, 1) for an experiment: the same in every process and on every run."""
    digest = hashlib.blake2b(f"{experiment}\x00{visitor_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SPACE


def assign(experiment: str, arms: Sequence[A], visitor_id: str) -> A:
    """The arm a visitor sees: the weights cut [0, 1) into consecutive shares, in the arms' order."""
    point = bucket(experiment, visitor_id) * sum(arm.weight for arm in arms)
    edge = 0
    for arm in arms:
        edge += arm.weight
        if point < edge:
            return arm
    return arms[-1]  # never reached: point < the sum of the weights
