"""Each custom action through the rasa-sdk executor, with real trackers and the real domain."""
from __future__ import annotations

import pytest

from bot.knowledge_base import load_knowledge_base


def tracker(text: str = "", intent: str = "", ranking=None, search=None, events=None, level: str = "none") -> dict:
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.9},
        "intent_ranking": ranking or [{"name": intent, "confidence": 0.9}],
        "entities": [],
        "article_search": search or [],
    }
    return {
        "sender_id": "test",
        "slots": {"escalation_level": level, "warning_signs": []},
        "latest_message": latest,
        "events": events or [],
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": "action_listen",
    }


async def run(executor, domain, action: str, **kwargs) -> dict:
    return await executor.run(
        {"next_action": action, "sender_id": "test", "tracker": tracker(**kwargs), "domain": domain, "version": "3.6.2"}
    )


def rendered(domain: dict, response: dict) -> str:
    """The text of a reply the action sent."""
    return response["text"]


async def test_answer_from_article_quotes_and_cites(executor, domain):
    result = await run(
        executor, domain, "action_answer_from_article",
        text="wat doet DAVID Spine", intent="section_therapies",
        search=[{"item": "section_therapies", "paragraph": 1, "score": 0.9}],
    )
    response, offer = result["responses"]
    text = rendered(domain, response)
    assert response["citation"] == {"item": "section_therapies", "heading": "Therapeutische invalshoeken", "paragraphs": [1]}
    assert offer["text"] == "Misschien wil je ook weten:" and "/section_therapies" not in [b["payload"] for b in offer["buttons"]]
    kb = load_knowledge_base()
    assert text.startswith(kb.item("section_therapies").paragraphs[1])
    assert text.endswith("Bron: Therapeutische invalshoeken")
    assert "huisarts" not in text  # not a self-care answer: no safety net


async def test_self_care_answer_has_safety_net_before_source(executor, domain):
    result = await run(executor, domain, "action_answer_from_article", text="wat kan ik zelf doen", intent="faq_relieve_yourself")
    text = rendered(domain, result["responses"][0])
    lines = text.splitlines()
    assert lines[-1] == "Bron: Veelgestelde vragen – Hoe kan ik zelf mijn rugpijn verlichten?"
    assert "3 à 4 weken" in text and "huisarts" in text


async def test_about_and_sources(executor, domain):
    about = rendered(domain, (await run(executor, domain, "action_answer_from_article", intent="article_about"))["responses"][0])
    assert "Christian Vagn Uhre" in about and "17 januari 2026" in about and "6 minuten" in about
    assert about.splitlines()[-1] == "Bron: Rugpijn? Bewegen is de sleutel naar verlichting!"
    sources = rendered(domain, (await run(executor, domain, "action_answer_from_article", intent="article_sources"))["responses"][0])
    assert "15. Moet ik naar de Dokter." in sources and sources.endswith("Bron: Bronnen")


async def test_unknown_item_falls_back(executor, domain):
    result = await run(executor, domain, "action_answer_from_article", intent="greet")
    assert rendered(domain, result["responses"][0]).startswith("Sorry, dat begrijp ik niet goed")


async def test_clarify_offers_up_to_three_topics(executor, domain):
    ranking = [
        {"name": "nlu_fallback", "confidence": 1.0},
        {"name": "section_role_of_movement", "confidence": 0.41},
        {"name": "section_active_vs_rest", "confidence": 0.38},
        {"name": "greet", "confidence": 0.12},
        {"name": "faq_why_movement", "confidence": 0.05},
    ]
    search = [{"item": "faq_why_movement", "paragraph": 0, "score": 0.88}, {"item": "section_selfcare", "paragraph": 0, "score": 0.87}]
    result = await run(executor, domain, "action_clarify", text="rust of bewegen", intent="nlu_fallback", ranking=ranking, search=search)
    (response,) = result["responses"]
    assert response["text"] == "Bedoel je…?"
    assert [b["payload"] for b in response["buttons"]] == [
        "/section_role_of_movement", "/section_active_vs_rest", "/faq_why_movement",
    ]
    assert response["buttons"][0]["title"] == "De rol van beweging bij rugpijn"


async def test_clarify_without_candidates_explains(executor, domain):
    ranking = [{"name": "nlu_fallback", "confidence": 1.0}, {"name": "greet", "confidence": 0.3}]
    result = await run(executor, domain, "action_clarify", text="blub", intent="nlu_fallback", ranking=ranking)
    assert rendered(domain, result["responses"][0]).startswith("Sorry, dat begrijp ik niet goed")


async def test_session_start_introduces_and_carries_slots(executor, domain):
    result = await run(executor, domain, "action_session_start")
    (response,) = result["responses"]
    text = rendered(domain, response)
    assert "digitale assistent" in text and "Anodyne-team" in text and "fysiotherapeut Christian Vagn Uhre" in text
    events = [event["event"] for event in result["events"]]
    assert events[0] == "session_started" and events[-1] == "action"
    assert "slot" in events  # carried over


async def test_widget_start_payload_does_not_repeat_the_introduction(executor, domain):
    """Rasa starts a new sender's session (with the introduction), then `/session_start` arrives."""
    started = [  # the order in which Rasa logs its own session start
        {"event": "action", "name": "action_session_start"},
        {"event": "bot", "text": "Hoi! Ik ben de digitale assistent…"},
        {"event": "session_started"},
        {"event": "action", "name": "action_listen"},
        {"event": "user", "text": "/session_start", "parse_data": {"intent": {"name": "session_start"}}},
    ]
    result = await run(executor, domain, "action_session_start", text="/session_start", intent="session_start", events=started)
    assert result["responses"] == []
    assert result["events"][0]["event"] == "session_started"


async def test_expired_session_introduces_again(executor, domain):
    earlier = [
        {"event": "action", "name": "action_session_start"},
        {"event": "bot", "text": "Hoi! Ik ben de digitale assistent…"},
        {"event": "session_started"},
        {"event": "user", "text": "hoi", "parse_data": {"intent": {"name": "greet"}}},
    ]
    result = await run(executor, domain, "action_session_start", text="hoi", intent="greet", events=earlier)
    assert len(result["responses"]) == 1


@pytest.mark.parametrize(
    "text, names",
    [
        ("wat kost het zitkussen?", ["Ergonomisch Zitkussen"]),
        ("helpt dat shirt voor mijn houding?", ["Women's Posture Shirt™ Zipper - Nude"]),
        ("welke producten verkopen jullie?", ["Women's Posture Shirt™ Zipper - Nude", "Ergonomisch Zitkussen"]),
    ],
)
async def test_product_answers(executor, domain, text, names):
    result = await run(executor, domain, "action_answer_product", text=text, intent="ask_product")
    assert [r["text"].split(" – ")[0] for r in result["responses"]] == names
    for response in result["responses"]:
        answer = rendered(domain, response)
        assert "€" in answer and "Bespaar 37%" in answer
        assert "Lees meer" not in answer  # no link until one is configured


@pytest.mark.parametrize(
    "text", ["hebben jullie een kniebrace?", "verkopen jullie ook matrassen?", "kan ik bij jullie pijnstillers kopen?"]
)
async def test_product_not_in_article(executor, domain, text):
    result = await run(executor, domain, "action_answer_product", text=text, intent="ask_product")
    texts = [rendered(domain, response) for response in result["responses"]]
    assert texts[0].startswith("Dit artikel noemt daar geen product voor.")
    assert not any("€" in answer for answer in texts)
    assert any("apotheek" in answer for answer in texts) == ("pijnstillers" in text)


async def answer_with_slots(executor, domain, text, intent, **slots):
    state = tracker(text=text, intent=intent)
    state["slots"].update(slots)
    return await executor.run({"next_action": "action_answer_from_article", "sender_id": "t", "tracker": state, "domain": domain, "version": "3.6.2"})


async def test_contextual_product_mention_when_words_and_topic_fit(executor, domain):
    result = await answer_with_slots(executor, domain, "ik zit de hele dag op kantoor, wat kan ik zelf doen?", "faq_relieve_yourself")
    texts = [r["text"] for r in result["responses"]]
    assert texts[0].splitlines()[-1].startswith("Bron: ")  # the answer comes first, cited
    assert texts[1].startswith("Uit onze winkel: Ergonomisch Zitkussen")
    assert "€\xa069,00" in texts[1] and "Lees meer" not in texts[1]  # no link until configured
    assert result["events"] == [{"event": "slot", "timestamp": None, "name": "products_mentioned", "value": ["seat_cushion"]}]


async def test_no_mention_without_the_visitors_words_or_for_other_topics(executor, domain):
    plain = await answer_with_slots(executor, domain, "wat kan ik zelf doen tegen rugpijn?", "faq_relieve_yourself")
    assert products_of(plain) == [] and plain["events"] == []
    other_topic = await answer_with_slots(executor, domain, "ik zit veel, wie schreef dit?", "article_about")
    assert products_of(other_topic) == []


def products_of(result) -> list:
    return [response["product"] for response in result["responses"] if response.get("product")]


async def test_mention_at_most_once_per_product(executor, domain):
    result = await answer_with_slots(
        executor, domain, "ik zit de hele dag, wat kan ik zelf doen?", "faq_relieve_yourself", products_mentioned=["seat_cushion"]
    )
    assert products_of(result) == [] and result["responses"][0]["citation"]["item"] == "faq_relieve_yourself"


@pytest.mark.parametrize("level", ["soon", "urgent_now", "urgent_112"])
async def test_no_mention_after_an_escalation(executor, domain, level):
    result = await answer_with_slots(
        executor, domain, "ik zit de hele dag, wat kan ik zelf doen?", "faq_relieve_yourself", escalation_level=level
    )
    assert len(result["responses"]) == 1 and "winkel" not in result["responses"][0]["text"]


async def test_configured_link_is_shown(executor, domain, monkeypatch):
    from actions import products  # the action module binds product_settings: patch it there

    settings = {**products.product_settings(), "products": {**products.product_settings()["products"]}}
    settings["products"]["posture_shirt"] = {**settings["products"]["posture_shirt"], "url": "https://winkel.example/shirt"}
    monkeypatch.setattr(products, "product_settings", lambda: settings)
    result = await run(executor, domain, "action_answer_product", text="wat kost het posture shirt?", intent="ask_product")
    assert result["responses"][0]["text"].endswith("Lees meer: https://winkel.example/shirt")


async def test_a_question_the_article_does_not_cover_is_told_so_instead_of_the_nearest_item(executor, domain):
    result = await run(executor, domain, "action_answer_from_article", text="Wordt fysiotherapie vergoed door mijn zorgverzekering?",
                       intent="section_therapies", search=[{"item": "section_therapies", "paragraph": 0, "score": 0.9}])
    texts = [response["text"] for response in result["responses"]]
    assert texts == ["Daarover staat niets in het artikel, dus daar kan ik je geen antwoord op geven. "
                     "Wat je zorgverzekering vergoedt, kan je zorgverzekeraar je vertellen."]
    assert not any(response.get("citation") for response in result["responses"])


async def test_of_two_questions_the_one_the_article_does_not_cover_is_told_so_the_other_answered(executor, domain):
    state = tracker(text="welke oefeningen helpen en wat helpt tegen nekpijn?", intent="faq_best_exercises")
    state["latest_message"]["article_questions"] = [
        {"text": "welke oefeningen helpen", "hits": [{"item": "faq_best_exercises", "paragraph": 0, "score": 0.9}]},
        {"text": "wat helpt tegen nekpijn?", "hits": [{"item": "faq_relieve_yourself", "paragraph": 0, "score": 0.9}]},
    ]
    result = await executor.run({"next_action": "action_answer_from_article", "sender_id": "t", "tracker": state,
                                 "domain": domain, "version": "3.6.2"})
    answers = [response for response in result["responses"] if not response.get("buttons")]
    assert answers[0]["citation"]["item"] == "faq_best_exercises"
    assert answers[1]["text"] == 'Op je vraag "wat helpt tegen nekpijn?" geeft het artikel geen antwoord. Het artikel gaat alleen over rugpijn.'


async def test_an_order_question_about_a_product_gets_no_product_line(executor, domain):
    result = await run(executor, domain, "action_answer_product", text="kan ik mijn posture shirt retourneren?", intent="ask_product")
    texts = [response["text"] for response in result["responses"]]
    assert len(texts) == 1 and texts[0].startswith("Daarover staat niets in het artikel") and "winkel" in texts[0]
    assert "€" not in texts[0]


async def test_a_question_about_warning_signs_as_such_gets_the_articles_answer_on_when_to_get_help(executor, domain):
    result = await run(executor, domain, "action_answer_from_article", text="welke alarmsignalen zijn er bij rugpijn?",
                       intent="faq_best_exercises")
    assert result["responses"][0]["citation"]["item"] == "faq_when_professional"


async def test_an_unsure_guess_about_a_hypothetical_sign_answers_when_to_get_help_instead_of_offering_topics(executor, domain):
    state = tracker(text="wat als de pijn 's nachts erger wordt?", intent="nlu_fallback")
    state["latest_message"]["warning_signs"] = {"level": "none", "signs": [], "negated": [], "hypothetical": [
        {"sign_id": "constant_or_night_pain", "level": "soon", "text": "pijn 's nachts", "reason": "hypothetical"}]}
    result = await executor.run({"next_action": "action_clarify", "sender_id": "t", "tracker": state, "domain": domain, "version": "3.6.2"})
    assert [response.get("citation", {}).get("item") for response in result["responses"]] == ["faq_when_professional"]
    assert not result["responses"][0].get("buttons")


@pytest.mark.parametrize("level", ["soon", "urgent_now"])
async def test_after_a_referral_a_self_care_answer_has_no_safety_net_that_would_contradict_it(executor, domain, level):
    """"Ik kan niet meer plassen" (bel nu) → "Welke oefeningen zijn goed?": not "na 3 à 4 weken … huisarts"."""
    result = await answer_with_slots(executor, domain, "wat kan ik zelf doen", "faq_relieve_yourself", escalation_level=level)
    text = result["responses"][0]["text"]
    assert "3 à 4 weken" not in text and text.endswith("Bron: Veelgestelde vragen – Hoe kan ik zelf mijn rugpijn verlichten?")


def referred_session(level: str, new_session_after: bool = False) -> list:
    """Events of a session whose earlier turn referred at `level`, then the latest user message."""
    events = [
        {"event": "session_started"},
        {"event": "user", "text": "Ik kan sinds vanmorgen niet meer plassen", "parse_data": {}},
        {"event": "bot", "text": "Bel nu je huisarts...", "metadata": {"escalation": {"level": level, "signs": []}}},
    ]
    if new_session_after:
        events.append({"event": "session_started"})
    return events + [{"event": "user", "text": "Welke oefeningen helpen?", "parse_data": {}}]


REMINDER = {"urgent_now": "huisartsenpost", "urgent_112": "112"}


@pytest.mark.parametrize("action, intent", [
    ("action_answer_from_article", "faq_best_exercises"),
    ("action_answer_follow_up", "follow_up"),
    ("action_clarify", "nlu_fallback"),
    ("action_answer_product", "product"),
])
@pytest.mark.parametrize("level", ["urgent_now", "urgent_112"])
async def test_later_answers_of_an_urgently_referred_session_open_with_a_reminder(executor, domain, action, intent, level):
    result = await run(executor, domain, action, text="Welke oefeningen helpen?", intent=intent,
                       events=referred_session(level), level=level)
    first, *rest = result["responses"]
    assert first["text"].startswith("Denk eraan:") and REMINDER[level] in first["text"]
    assert rest and not any((r.get("text") or "").startswith("Denk eraan:") for r in rest)
    assert not any("€" in (r.get("text") or "") for r in result["responses"])  # still no products


@pytest.mark.parametrize("level, new_session_after", [("soon", False), ("urgent_now", True), ("none", False)])
async def test_no_reminder_after_a_soon_referral_or_in_a_later_session(executor, domain, level, new_session_after):
    result = await run(executor, domain, "action_answer_from_article", text="Welke oefeningen helpen?",
                       intent="faq_best_exercises", events=referred_session(level, new_session_after), level=level)
    assert not any((r.get("text") or "").startswith("Denk eraan:") for r in result["responses"])
    assert "Bron:" in result["responses"][0]["text"]


@pytest.mark.parametrize("level, reminded", [("urgent_112", True), ("urgent_now", True), ("soon", False), ("none", False)])
async def test_the_reminder_before_a_fixed_reply_is_said_only_after_an_urgent_referral_of_this_session(
        executor, domain, level, reminded):
    """data/rules.yml runs it before "Graag gedaan!", "Tot ziens" and the other fixed replies."""
    result = await run(executor, domain, "action_remind_referral", text="dank je", intent="thank",
                       events=referred_session(level), level=level)
    texts = [response.get("text") or "" for response in result["responses"]]
    if reminded:
        assert len(texts) == 1 and texts[0].startswith("Denk eraan:") and REMINDER[level] in texts[0]
    else:
        assert texts == []
    assert result["events"] == []
    later = await run(executor, domain, "action_remind_referral", text="dank je", intent="thank",
                      events=referred_session(level, new_session_after=True), level=level)
    assert later["responses"] == []
