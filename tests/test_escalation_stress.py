"""The held-out escalation stress sets through the whole stack (REST), and through the pattern
layer alone. Both were written from the policy alone by authors who saw neither the patterns, the
paraphrase banks nor the other set, committed before the tuning they measure, and never edited:
- tests/escalation_stress_set.yml (327 messages, a79268d, before the semantic layer was tuned);
- tests/escalation_stress_set_2.yml (160 messages, ba619fc, before the second round of pattern
  fixes, which were made for the kinds of misses the first set showed).

Issue 14's targets (REST): urgent at an urgent level >= 97%, soon at soon or higher >= 95%, none to
an urgent level <= 5%, none to any level <= 20%. The bounds in SETS are the figures measured (both
sets meet every target), a regression guard. Per-sign recall and every miss:
tests/artifacts/<set>_report.json.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List

import pytest
import yaml

from bot import paths
from bot.escalation.detector import get_detector
from bot.levels import URGENT_LEVELS, level_rank
from conftest import ARTIFACTS, Conversation


@dataclass(frozen=True)
class StressSet:
    """A held-out set and the bounds its REST figures are held to (the figures measured, never
    below the issue's targets where they are met)."""

    name: str
    min_urgent_at_urgent: float
    min_soon_at_soon: float
    max_none_to_urgent: float
    max_none_to_any: float
    min_patterns_urgent: float
    min_sign_count: int

    @property
    def cases(self) -> List[Dict]:
        return yaml.safe_load((paths.TESTS_DIR / f"{self.name}.yml").read_text("utf-8"))["cases"]


# Measured (REST): set 1 urgent 1.0 (124/124), soon 1.0 (108/108), none -> urgent 0.0105 (1/95),
# none -> any 0.063 (6/95); set 2 urgent 0.983 (58/59), soon 1.0 (41/41), none -> urgent 0.033 (2/60),
# none -> any 0.083 (5/60).
SETS = [
    StressSet("escalation_stress_set", min_urgent_at_urgent=0.99, min_soon_at_soon=0.99,
              max_none_to_urgent=0.011, max_none_to_any=0.07, min_patterns_urgent=0.66, min_sign_count=8),
    StressSet("escalation_stress_set_2", min_urgent_at_urgent=0.98, min_soon_at_soon=0.99,
              max_none_to_urgent=0.034, max_none_to_any=0.084, min_patterns_urgent=0.6, min_sign_count=3),
]


def rates(outcomes: List[Dict]) -> Dict[str, float]:
    def share(expected, at_least):
        chosen = [o for o in outcomes if o["level"] in expected]
        return sum(level_rank(o["got"]) >= level_rank(at_least) for o in chosen) / len(chosen)

    return {"urgent_at_urgent": share(URGENT_LEVELS, "urgent_now"), "soon_at_soon": share(("soon",), "soon"),
            "none_to_urgent": share(("none",), "urgent_now"), "none_to_any": share(("none",), "soon")}


def per_sign(outcomes: List[Dict]) -> Dict[str, str]:
    hits = defaultdict(list)
    for o in outcomes:
        if o["level"] != "none":
            at = "urgent_now" if o["level"] in URGENT_LEVELS else "soon"
            for sign in o["signs"]:
                hits[sign].append(level_rank(o["got"]) >= level_rank(at))
    return {sign: f"{sum(h)}/{len(h)}" for sign, h in sorted(hits.items())}


@pytest.fixture(scope="module", params=SETS, ids=lambda stress: stress.name)
def stress(request) -> StressSet:
    return request.param


def test_sets_are_the_ones_issue_14_asks_for():
    first = SETS[0].cases
    assert len(first) >= 250 and sum(c["level"] == "none" for c in first) >= 60
    for stress in SETS:
        counts = defaultdict(int)
        for case in stress.cases:
            for sign in case["signs"]:
                counts[sign] += 1
        assert min(counts.values()) >= stress.min_sign_count, (stress.name, counts)


@pytest.fixture(scope="module")
def outcomes(stack, stress) -> List[Dict]:
    results = []
    for case in stress.cases:
        conversation = Conversation(stack.rest_url)
        replies = conversation.texts(case["text"])
        slots = stack.tracker(conversation.sender)["slots"]
        results.append({**case, "got": slots.get("escalation_level") or "none", "replies": replies})
    report = {"rates": rates(results), "per_sign": per_sign(results),
              "misses": [o for o in results if level_rank(o["got"]) < level_rank(
                  "none" if o["level"] == "none" else ("urgent_now" if o["level"] in URGENT_LEVELS else "soon"))],
              "over": [o for o in results if o["level"] == "none" and o["got"] != "none"]}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{stress.name}_report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), "utf-8")
    print(f"\n{stress.name} through REST:", {k: round(v, 3) for k, v in report["rates"].items()})
    return results


def test_urgent_signs_reach_an_urgent_level(outcomes, stress):
    assert rates(outcomes)["urgent_at_urgent"] >= stress.min_urgent_at_urgent, per_sign(outcomes)


def test_soon_signs_reach_soon_or_higher(outcomes, stress):
    assert rates(outcomes)["soon_at_soon"] >= stress.min_soon_at_soon, per_sign(outcomes)


def test_none_messages_are_rarely_escalated(outcomes, stress):
    measured = rates(outcomes)
    assert measured["none_to_urgent"] <= stress.max_none_to_urgent
    assert measured["none_to_any"] <= stress.max_none_to_any


def test_pattern_layer_alone(stress):
    detector = get_detector()
    urgent = [c for c in stress.cases if c["level"] in URGENT_LEVELS]
    caught = sum(level_rank(detector.detect(c["text"]).level) >= level_rank("urgent_now") for c in urgent)
    assert caught / len(urgent) >= stress.min_patterns_urgent
