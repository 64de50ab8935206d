"""The escalation action and the clock, in-process through the rasa-sdk executor."""
from __future__ import annotations

import datetime

import pytest

from bot import clock
from bot.referral import referral_reply_name
from test_actions import rendered, tracker


@pytest.mark.parametrize(
    "moment, office",
    [
        ("2026-11-24T10:00", True),   # Tuesday morning
        ("2026-11-24T17:00", False),  # closing time
        ("2026-11-24T07:59", False),
        ("2026-11-28T11:00", False),  # Saturday
        ("2026-12-25T11:00", False),  # Christmas, a Friday
        ("2026-04-27T11:00", False),  # King's Day, a Monday
    ],
)
def test_office_hours(moment, office):
    assert clock.is_office_hours(datetime.datetime.fromisoformat(moment).replace(tzinfo=clock.AMSTERDAM)) is office


def test_clock_is_injectable(monkeypatch):
    monkeypatch.setenv("ASSISTANT_NOW", "2026-11-28T03:00")
    assert clock.now().hour == 3 and clock.now().tzinfo is not None


def test_response_by_level_and_time():
    assert referral_reply_name("urgent_now", True) == "escalate_urgent_now_office"
    assert referral_reply_name("urgent_now", False) == "escalate_urgent_now_after_hours"
    assert referral_reply_name("urgent_112", False) == "escalate_urgent_112"
    assert referral_reply_name("soon", True, ["no_improvement"]) == "escalate_soon_persistent"
    assert referral_reply_name("soon", True, ["no_improvement", "weight_loss"]) == "escalate_soon"


def signs(*entries):
    return {"level": "x", "signs": [{"sign_id": s, "level": lvl, "text": s} for s, lvl in entries], "hypothetical": [], "negated": []}


async def escalate(executor, domain, detection, original="faq_best_exercises", slots=None):
    state = tracker(text="...", intent="report_warning_sign")
    state["latest_message"]["warning_signs"] = detection
    state["latest_message"]["original_intent"] = {"name": original, "confidence": 0.8}
    state["slots"].update(slots or {})
    return await executor.run({"next_action": "action_escalate", "sender_id": "t", "tracker": state, "domain": domain, "version": "3.6.2"})


def slot_values(result):
    return {e["name"]: e["value"] for e in result["events"] if e["event"] == "slot"}


@pytest.mark.parametrize(
    "moment, first_word",
    [("2026-11-24T10:00", "huisarts"), ("2026-11-24T22:00", "huisartsenpost")],
)
async def test_urgent_now_names_the_right_doctor_first(executor, domain, monkeypatch, moment, first_word):
    from bot.escalation import load_sign_book

    urgent_now = next(s for s in load_sign_book().sign_ids if load_sign_book().level_of(s) == "urgent_now")
    monkeypatch.setenv("ASSISTANT_NOW", moment)
    result = await escalate(executor, domain, signs((urgent_now, "urgent_now")))
    texts = [rendered(domain, r) for r in result["responses"]]
    assert "huisarts" in texts[0] and "huisartsenpost" in texts[0]
    mentions = [w for w in ("huisartsenpost", "huisarts ") if w in texts[0]]
    assert texts[0].index(first_word) == min(texts[0].index(w) for w in mentions)
    assert len(texts) == 2 and "Bron:" not in " ".join(texts)  # referral + offer to help later, nothing else
    assert slot_values(result)["escalation_level"] == "urgent_now"
    assert result["responses"][0]["escalation"]["level"] == "urgent_now"  # audit metadata


async def test_soon_answers_the_rest_of_the_question(executor, domain):
    from bot.escalation import load_sign_book

    book = load_sign_book()
    soon = next(s for s in book.sign_ids if book.level_of(s) == "soon")
    result = await escalate(executor, domain, signs((soon, "soon")))
    texts = [rendered(domain, r) for r in result["responses"]]
    assert "huisarts" in texts[0] and "112" not in texts[0]
    assert "Bron:" in texts[-1]
    # the referral stands alone: no "na 3 à 4 weken" safety net after "binnen een paar dagen"
    assert "3 à 4 weken" not in texts[-1]
    assert slot_values(result) == {"warning_signs": [soon], "escalation_level": "soon"}


async def test_memory_keeps_earlier_signs_and_the_highest_level(executor, domain):
    from bot.escalation import load_sign_book

    book = load_sign_book()
    soon = next(s for s in book.sign_ids if book.level_of(s) == "soon")
    result = await escalate(
        executor, domain, signs((soon, "soon")), slots={"warning_signs": ["earlier_sign"], "escalation_level": "urgent_112"}
    )
    values = slot_values(result)
    assert values["warning_signs"] == ["earlier_sign", soon]
    assert values["escalation_level"] == "urgent_112"


async def test_learned_intent_does_not_overrule_a_negation(executor, domain):
    detection = {"level": "none", "signs": [], "hypothetical": [], "negated": [{"sign_id": "fever", "level": "soon", "text": "geen koorts"}]}
    state = tracker(text="geen koorts, welke oefeningen?", intent="report_warning_sign",
                    ranking=[{"name": "report_warning_sign", "confidence": 0.7}, {"name": "faq_best_exercises", "confidence": 0.2}])
    state["latest_message"]["warning_signs"] = detection
    result = await executor.run({"next_action": "action_escalate", "sender_id": "t", "tracker": state, "domain": domain, "version": "3.6.2"})
    assert result["events"] == []
    assert result["responses"][0]["text"].endswith("Bron: Veelgestelde vragen – Wat zijn de beste oefeningen voor rugpijn?")


async def test_learned_intent_alone_escalates_to_soon(executor, domain):
    result = await escalate(executor, domain, {"level": "none", "signs": [], "hypothetical": [], "negated": []})
    assert slot_values(result)["escalation_level"] == "soon"
    assert slot_values(result)["warning_signs"] == ["learned_symptom_report"]


async def test_a_sign_only_asked_about_gets_the_articles_answer_on_when_to_get_help_not_a_fallback(executor, domain):
    """"wat als ik ooit gevoelloos word in mijn benen?": the classifier guessed report_warning_sign,
    the detector found the sign only as hypothetical: no referral, and no "begrijp ik niet"."""
    detection = {"level": "none", "signs": [], "negated": [],
                 "hypothetical": [{"sign_id": "both_legs_numb_or_weak", "level": "urgent_now", "text": "gevoelloos", "reason": "hypothetical"}]}
    result = await escalate(executor, domain, detection, original="report_warning_sign")
    assert [response.get("citation", {}).get("item") for response in result["responses"]] == ["faq_when_professional"]
    assert not slot_values(result)  # no level, no signs recorded


async def test_a_denied_sign_with_a_question_the_classifier_does_not_name_is_clarified_by_the_paragraphs(executor, domain):
    """"Ik heb geen koorts en kan gewoon plassen. Helpt warmte?": the classifier guessed only
    report_warning_sign, the detector found every sign denied: "Bedoel je…?" with the items of the
    best paragraphs, not "dat begrijp ik niet"."""
    detection = {"level": "none", "signs": [], "hypothetical": [], "negated": [{"sign_id": "fever", "level": "soon", "text": "geen koorts"}]}
    state = tracker(text="Ik heb geen koorts en kan gewoon plassen. Helpt warmte?", intent="report_warning_sign",
                    ranking=[{"name": "report_warning_sign", "confidence": 0.87}, {"name": "ask_product", "confidence": 0.04}])
    state["latest_message"]["warning_signs"] = detection
    state["latest_message"]["article_search"] = [{"item": "section_selfcare", "paragraph": 1, "score": 0.86},
                                                 {"item": "section_therapies", "paragraph": 1, "score": 0.80}]
    result = await executor.run({"next_action": "action_escalate", "sender_id": "t", "tracker": state, "domain": domain, "version": "3.6.2"})
    assert result["events"] == []
    [response] = result["responses"]
    assert response["text"].startswith("Bedoel je")
    assert [button["payload"] for button in response["buttons"]] == ["/section_selfcare"]
