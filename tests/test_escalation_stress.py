"""The held-out escalation stress sets through the whole stack (REST), and through the pattern
layer alone. Each was written from the policy alone by an author who saw neither the patterns, the
paraphrase banks nor the other sets, committed before the tuning it measures, and never edited:
- tests/escalation_stress_set.yml (327 messages, a79268d, before the semantic layer was tuned);
- tests/escalation_stress_set_2.yml (160 messages, ba619fc, before the second round of pattern
  fixes, which were made for the kinds of misses the first set showed);
- tests/escalation_stress_set_3.yml (170 messages and 20 conversations of 2-3 turns scored on the
  level after their last turn, 366db2d, before the third round of pattern fixes).

Issue 14's targets (REST): urgent at an urgent level >= 97%, soon at soon or higher >= 95%, none to
an urgent level <= 5%, none to any level <= 20%. The bounds in SETS are the figures measured, a
regression guard (where a set misses a target, README "Warning signs" says so). Per-sign recall and
every miss: tests/artifacts/<set>_report.json.
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
        return self.content["cases"]

    @property
    def conversations(self) -> List[Dict]:
        return self.content.get("conversations") or []

    @property
    def content(self) -> Dict:
        return yaml.safe_load((paths.TESTS_DIR / f"{self.name}.yml").read_text("utf-8"))


# Measured (REST, 2026-12-03): set 1 urgent 1.0 (124/124), soon 1.0 (108/108), none -> urgent 0.0105
# (1/95), none -> any 0.021 (2/95); set 2 urgent 0.983 (58/59), soon 1.0 (41/41), none -> urgent 0.033
# (2/60), none -> any 0.067 (4/60); set 3 urgent 1.0 (79/79), soon 1.0 (48/48), none -> urgent 0.140
# (6/43) and none -> any 0.209 (9/43), over the issue's 5 % and 20 % (README "Warning signs"), patterns
# alone urgent 0.722 (57/79). Set 3's over-escalation bounds leave one message for the learned
# `report_warning_sign` intent, which a retraining moves.
SETS = [
    StressSet("escalation_stress_set", min_urgent_at_urgent=0.99, min_soon_at_soon=0.99,
              max_none_to_urgent=0.011, max_none_to_any=0.07, min_patterns_urgent=0.66, min_sign_count=8),
    StressSet("escalation_stress_set_2", min_urgent_at_urgent=0.98, min_soon_at_soon=0.99,
              max_none_to_urgent=0.034, max_none_to_any=0.084, min_patterns_urgent=0.6, min_sign_count=3),
    StressSet("escalation_stress_set_3", min_urgent_at_urgent=0.98, min_soon_at_soon=0.97,
              max_none_to_urgent=0.17, max_none_to_any=0.24, min_patterns_urgent=0.7, min_sign_count=3),
]


def required_level(label: str) -> str:
    """The lowest level that counts as caught for a label: an urgent label (urgent_now or urgent_112)
    needs either urgent level, `soon` needs soon or higher, `none` anything."""
    if label == "none":
        return "none"
    return "urgent_now" if label in URGENT_LEVELS else "soon"


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
            for sign in o["signs"]:
                hits[sign].append(level_rank(o["got"]) >= level_rank(required_level(o["level"])))
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
              "misses": [o for o in results if level_rank(o["got"]) < level_rank(required_level(o["level"]))],
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


# The conversations of set 3, scored on the level after their last turn (policy behaviours 3 and 8:
# a sign reported in an earlier turn still counts). Measured (REST): 16/16 conversations with a sign at
# its level or higher (3 of the 4 `soon` ones at urgent_now or 112: the escalating turn's own sign is
# higher than the author's label, or a relative's sign read as urgent), 0/4 without one escalated.
CONVERSATION_SET = next(stress for stress in SETS if stress.conversations)
MIN_CONVERSATIONS_AT_LEVEL = 0.93      # urgent at urgent and soon at soon or higher, together
MAX_CONVERSATIONS_NONE_ESCALATED = 0.25


@pytest.fixture(scope="module")
def conversation_outcomes(stack) -> List[Dict]:
    results = []
    for case in CONVERSATION_SET.conversations:
        conversation = Conversation(stack.rest_url)
        for turn in case["turns"]:
            conversation.texts(turn)
        slots = stack.tracker(conversation.sender)["slots"]
        results.append({**case, "got": slots.get("escalation_level") or "none"})
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{CONVERSATION_SET.name}_conversations_report.json").write_text(
        json.dumps(results, ensure_ascii=False, indent=2), "utf-8")
    return results


def test_conversations_keep_the_level_of_earlier_turns(conversation_outcomes):
    escalating = [o for o in conversation_outcomes if o["level"] != "none"]
    at_level = [o for o in escalating
                if level_rank(o["got"]) >= level_rank(required_level(o["level"]))]
    assert len(escalating) >= 15
    assert len(at_level) / len(escalating) >= MIN_CONVERSATIONS_AT_LEVEL, [
        (o["turns"], o["got"]) for o in escalating if o not in at_level]


def test_conversations_without_a_present_sign_are_rarely_escalated(conversation_outcomes):
    harmless = [o for o in conversation_outcomes if o["level"] == "none"]
    escalated = [o for o in harmless if o["got"] != "none"]
    assert harmless and len(escalated) / len(harmless) <= MAX_CONVERSATIONS_NONE_ESCALATED, escalated
