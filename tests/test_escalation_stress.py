"""The held-out escalation stress set (tests/escalation_stress_set.yml, 327 messages written from the
policy alone by an author who saw neither the patterns nor the paraphrase banks; never edited to
fit the detector) through the whole stack (REST), and through the pattern layer alone.

Issue targets (REST): urgent at an urgent level >= 97%, soon at soon or higher >= 95%, none to an
urgent level <= 5%, none to any level <= 20%. The bounds below are the figures measured after
tuning on the banks and tests/escalation_cases.yml only: a regression guard. Two of
them are not yet the issue's targets (soon recall, none -> urgent): see README "Warning signs".
Per-sign recall: tests/artifacts/escalation_stress_report.json.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Dict, List

import pytest
import yaml

from bot import paths
from bot.escalation.detector import get_detector
from bot.levels import URGENT_LEVELS, level_rank
from conftest import ARTIFACTS, Conversation

CASES: List[Dict] = yaml.safe_load((paths.TESTS_DIR / "escalation_stress_set.yml").read_text("utf-8"))["cases"]

# measured (REST): urgent 0.992 (123/124), soon 0.944 (102/108), none -> urgent 0.063 (6/95),
# none -> any 0.168 (16/95). (The first run judged single sentences for `soon` too: soon 0.954, but
# "Ik zit de hele dag op kantoor." alone read as constant pain; sentences now count for urgent only.)
MIN_URGENT_AT_URGENT = 0.99   # target 0.97: met
MIN_SOON_AT_SOON = 0.944      # target 0.95: NOT met (102/108; 103/108 would be)
MAX_NONE_TO_URGENT = 0.064    # target 0.05: NOT met (6/95; 4/95 would be)
MAX_NONE_TO_ANY = 0.17        # target 0.20: met
# the pattern layer alone (offline), first run: urgent 0.669, soon 0.722, none -> urgent 0.042
MIN_PATTERNS_URGENT = 0.66


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


def test_set_is_the_one_issue_14_asks_for():
    assert len(CASES) >= 250 and sum(c["level"] == "none" for c in CASES) >= 60
    counts = defaultdict(int)
    for case in CASES:
        for sign in case["signs"]:
            counts[sign] += 1
    assert min(counts.values()) >= 8, counts


@pytest.fixture(scope="module")
def outcomes(stack) -> List[Dict]:
    results = []
    for case in CASES:
        conversation = Conversation(stack.rest_url)
        replies = conversation.texts(case["text"])
        slots = stack.tracker(conversation.sender)["slots"]
        results.append({**case, "got": slots.get("escalation_level") or "none", "replies": replies})
    report = {"rates": rates(results), "per_sign": per_sign(results),
              "misses": [o for o in results if level_rank(o["got"]) < level_rank(
                  "none" if o["level"] == "none" else ("urgent_now" if o["level"] in URGENT_LEVELS else "soon"))],
              "over": [o for o in results if o["level"] == "none" and o["got"] != "none"]}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "escalation_stress_report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), "utf-8")
    print("\nstress set through REST:", {k: round(v, 3) for k, v in report["rates"].items()})
    return results


def test_urgent_signs_reach_an_urgent_level(outcomes):
    assert rates(outcomes)["urgent_at_urgent"] >= MIN_URGENT_AT_URGENT, per_sign(outcomes)


def test_soon_signs_reach_soon_or_higher(outcomes):
    assert rates(outcomes)["soon_at_soon"] >= MIN_SOON_AT_SOON, per_sign(outcomes)


def test_none_messages_are_rarely_escalated(outcomes):
    measured = rates(outcomes)
    assert measured["none_to_urgent"] <= MAX_NONE_TO_URGENT
    assert measured["none_to_any"] <= MAX_NONE_TO_ANY


def test_pattern_layer_alone():
    detector = get_detector()
    urgent = [c for c in CASES if c["level"] in URGENT_LEVELS]
    caught = sum(level_rank(detector.detect(c["text"]).level) >= level_rank("urgent_now") for c in urgent)
    assert caught / len(urgent) >= MIN_PATTERNS_URGENT
