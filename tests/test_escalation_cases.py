"""The detector against the independently labeled escalation cases (tests/escalation_cases.yml).

Detector level only (no Rasa, no running stack). The policy's three figures:
  * every urgent case (urgent_112 or urgent_now) comes out at an urgent level;
  * at least 95% of the soon cases come out at soon or higher;
  * no none case comes out at an urgent level.
Over-escalation is a cost the policy tolerates ("when unsure, the higher level"), but it may not
grow: its measured counts are upper bounds (lower them when a change of signs.yml lowers them).

    .venv/bin/python -m pytest tests/test_escalation_cases.py -q -rA
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import yaml

from bot.escalation.detector import Detection, get_detector
from bot.levels import LEVELS, level_rank

CASES_FILE = Path(__file__).with_name("escalation_cases.yml")
URGENT = ("urgent_now", "urgent_112")
SOON_RECALL = 0.95
# Over-escalation measured on the 262 cases: none -> soon 0; above the label at all 2 (soon -> urgent).
MAX_NONE_TO_SOON = 0
MAX_ABOVE_LABEL = 2


def load_cases() -> List[dict]:
    data = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
    cases = data["cases"]
    assert cases, "no cases"
    for case in cases:
        assert isinstance(case.get("text"), str) and case["text"].strip(), case
        assert case.get("level") in LEVELS, case
    return cases


@pytest.fixture(scope="module")
def results() -> List[Tuple[dict, Detection]]:
    detector = get_detector()
    return [(case, detector.detect(case["text"])) for case in load_cases()]


def describe(items: List[Tuple[dict, Detection]]) -> str:
    lines = []
    for case, detection in items:
        signs = ", ".join(f"{m.sign_id}:{m.text!r}" for m in detection.signs) or "-"
        lines.append(
            f"  [{case['level']}/{case.get('sign')}] -> {detection.level}: {case['text']!r}  signs: {signs}"
        )
    return "\n".join(lines)


def by_level(results, level: str) -> List[Tuple[dict, Detection]]:
    return [(case, detection) for case, detection in results if case["level"] == level]


def test_every_urgent_case_is_urgent(results):
    urgent = [item for item in results if item[0]["level"] in URGENT]
    missed = [(case, d) for case, d in urgent if d.level not in URGENT]
    assert urgent
    assert not missed, f"{len(missed)}/{len(urgent)} urgent cases under-escalated:\n{describe(missed)}"


def test_soon_cases_reach_soon_or_higher(results):
    soon = by_level(results, "soon")
    missed = [(case, d) for case, d in soon if d.level == "none"]
    recall = 1 - len(missed) / len(soon)
    assert recall >= SOON_RECALL, f"soon recall {recall:.1%} < {SOON_RECALL:.0%}:\n{describe(missed)}"


def test_no_none_case_is_urgent(results):
    none = by_level(results, "none")
    wrong = [(case, d) for case, d in none if d.level in URGENT]
    assert not wrong, f"{len(wrong)}/{len(none)} none cases escalated to urgent:\n{describe(wrong)}"


def test_report_over_escalation(results, capsys):
    """Over-escalation stays within its measured bounds; prints the confusion table (-rA)."""
    table: Dict[Tuple[str, str], int] = {}
    for case, detection in results:
        key = (case["level"], detection.level)
        table[key] = table.get(key, 0) + 1
    over = [(case, d) for case, d in by_level(results, "none") if d.level == "soon"]
    above = [(case, d) for case, d in results if level_rank(d.level) > level_rank(case["level"])]
    with capsys.disabled():
        print(f"\nescalation cases: {len(results)}")
        for expected in LEVELS:
            row = "  ".join(f"{got}={table.get((expected, got), 0)}" for got in LEVELS)
            print(f"  labeled {expected:<10} -> {row}")
        print(f"none -> soon: {len(over)}")
        if over:
            print(describe(over))
    assert len(over) <= MAX_NONE_TO_SOON, f"none -> soon: {len(over)} > {MAX_NONE_TO_SOON}:\n{describe(over)}"
    assert len(above) <= MAX_ABOVE_LABEL, f"above label: {len(above)} > {MAX_ABOVE_LABEL}:\n{describe(above)}"
