"""The escalation policy through the full stack (REST): the labeled set and the policy's words."""
from __future__ import annotations

import json

import pytest
import yaml

from bot import paths

from conftest import ARTIFACTS, Conversation, citation_of

CASES = yaml.safe_load((paths.TESTS_DIR / "escalation_cases.yml").read_text(encoding="utf-8"))["cases"]
ORDER = ("none", "soon", "urgent_now", "urgent_112")
URGENT = ("urgent_now", "urgent_112")


def escalation_level(stack, conversation: Conversation) -> str:
    return stack.tracker(conversation.sender)["slots"].get("escalation_level") or "none"


@pytest.fixture(scope="module")
def outcomes(stack):
    results = []
    for case in CASES:
        conversation = Conversation(stack.rest_url)
        texts = conversation.texts(case["text"])
        results.append({**case, "got": escalation_level(stack, conversation), "replies": texts})
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "escalation_report.json").write_text(json.dumps(results, ensure_ascii=False, indent=2), "utf-8")
    return results


def test_labeled_set_size():
    by = lambda level, lang="nl": sum(1 for c in CASES if c["level"] == level and c["lang"] == lang)
    assert by("urgent_112") + by("urgent_now") >= 30 and by("soon") >= 25 and by("none") >= 30
    assert sum(1 for c in CASES if c["lang"] == "nl" and c.get("kind") in ("negated", "hypothetical")) >= 12
    assert sum(1 for c in CASES if c["lang"] == "en") >= 10


def test_every_urgent_case_is_urgent(outcomes):
    missed = [(o["text"], o["got"]) for o in outcomes if o["level"] in URGENT and o["got"] not in URGENT]
    assert missed == []


def test_soon_cases_at_soon_or_higher(outcomes):
    soon = [o for o in outcomes if o["level"] == "soon"]
    caught = [o for o in soon if ORDER.index(o["got"]) >= ORDER.index("soon")]
    assert len(caught) / len(soon) >= 0.95, [(o["text"], o["got"]) for o in soon if o not in caught]


def test_no_none_case_is_urgent(outcomes):
    wrong = [(o["text"], o["got"]) for o in outcomes if o["level"] == "none" and o["got"] in URGENT]
    assert wrong == []


def test_replies_use_the_policy_words(outcomes):
    for outcome in outcomes:
        first = outcome["replies"][1] if len(outcome["replies"]) > 1 else ""  # [0] is the introduction
        if outcome["got"] == "urgent_112":
            assert "112" in first
        elif outcome["got"] == "urgent_now":
            assert "huisarts" in first and "huisartsenpost" in first
        elif outcome["got"] == "soon":
            assert "huisarts" in first
        if outcome["got"] in URGENT:
            assert citation_of(outcome["replies"]) is None  # nothing but the referral
            assert not any("€" in reply for reply in outcome["replies"])  # no products


def test_memory_across_turns(stack):
    conversation = Conversation(stack.rest_url)
    conversation.say("ik heb rugpijn, wat kan ik zelf doen?")
    conversation.say("oké, bedankt")
    texts = conversation.texts("en nu ook koorts en ik voel me echt ziek")
    assert any("huisartsenpost" in text for text in texts)
    assert escalation_level(stack, conversation) == "urgent_now"
    tracker = stack.tracker(conversation.sender)
    assert tracker["slots"]["warning_signs"]  # audit: the signs that triggered it
    audit = [e for e in tracker["events"] if e["event"] == "bot" and (e.get("metadata") or {}).get("escalation")]
    assert audit and audit[-1]["metadata"]["escalation"]["level"] == "urgent_now"


def test_preemption_answers_the_sign_first(stack):
    conversation = Conversation(stack.rest_url)
    conversation.say("hoi")
    texts = conversation.texts("Welke oefeningen helpen? Ik kan sinds vanmorgen niet meer plassen.")
    assert "huisarts" in texts[0] and "huisartsenpost" in texts[0]
    assert citation_of(texts) is None
