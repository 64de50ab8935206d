"""The whole stack through the REST channel: introduction, cited answers, fallbacks, bad input."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import requests

from conftest import Conversation, citation_of

FAQ_EXERCISES = "Veelgestelde vragen – Wat zijn de beste oefeningen voor rugpijn?"


def test_first_turn_introduces_a_digital_assistant(conversation):
    first = conversation.texts("hoi")[0]
    for words in ("digitale assistent", "geen mens", "Anodyne-team", "fysiotherapeut Christian Vagn Uhre", "geen diagnose"):
        assert words in first
    # only once per conversation
    assert not any("digitale assistent" in text for text in conversation.texts("hallo nogmaals"))


def test_widget_start_payload_introduces_once(conversation):
    texts = conversation.texts("/session_start")
    assert sum("digitale assistent" in text for text in texts) == 1


def test_answer_quotes_the_article_and_names_its_section(conversation):
    texts = conversation.texts("Welke oefeningen kan ik het beste doen tegen rugpijn?")
    answer = next(text for text in texts if "Bron:" in text)
    assert answer.splitlines()[-1] in (f"Bron: {FAQ_EXERCISES}", "Bron: Actieve beweging versus passieve rust")
    assert "Mobiliteitsoefeningen" in answer or "mobiliteitsoefeningen" in answer
    assert "huisarts" in answer  # self-care answers carry the safety net


def test_section_answer_is_short(conversation):
    texts = conversation.texts("Wat is het DAVID Spine-programma?")
    answer = next(text for text in texts if "Bron:" in text)
    assert answer.endswith("Bron: Therapeutische invalshoeken")
    assert "DAVID Spine" in answer
    assert "Traditionele fysiotherapie" not in answer  # the relevant paragraph, not the whole section


@pytest.mark.parametrize(
    "message, expected",
    [
        ("Wat voor weer wordt het morgen in Utrecht?", "alleen vragen over het artikel"),
        ("Hoeveel ibuprofen mag ik per dag nemen?", "apotheek"),
        ("ben jij een echt mens?", "digitale assistent"),
        ("ik wil een medewerker spreken", "Anodyne-team"),
    ],
)
def test_replies_without_a_source(conversation, message, expected):
    texts = conversation.texts(message)
    assert any(expected in text for text in texts)
    assert citation_of(texts) is None


def test_gibberish_gets_a_fallback(conversation):
    texts = conversation.texts("xqzt vlorp grimbel wuzz")
    assert citation_of(texts) is None
    assert any(words in text for text in texts for words in ("Sorry", "Bedoel je", "alleen vragen over het artikel"))


def test_clarify_offers_buttons(stack):
    conversation = Conversation(stack.rest_url)
    conversation.say("hoi")
    replies = conversation.say("beweging rust")
    clarify = [reply for reply in replies if reply.get("text", "").startswith("Bedoel je")]
    if clarify:  # whether this input is ambiguous depends on training; buttons must be well-formed
        buttons = clarify[0]["buttons"]
        assert 1 <= len(buttons) <= 3
        assert all(button["payload"].startswith("/") for button in buttons)
        follow = conversation.texts(buttons[0]["payload"])
        assert citation_of(follow)


BAD_INPUTS = {
    "empty": "",
    "whitespace": "   \n\t ",
    "long": "rugpijn " * 1250,
    "emoji": "😭😭🙏",
    "html": "<script>alert('x')</script><img src=x onerror=alert(1)>",
    "chinese": "我的背很痛，我该怎么办？",
    "arabic": "ظهري يؤلمني كثيرا",
    "control": "\x00\x01\x02",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_never_breaks_the_server(stack, name):
    conversation = Conversation(stack.rest_url)
    response = requests.post(stack.rest_url, json={"sender": conversation.sender, "message": BAD_INPUTS[name]}, timeout=60)
    assert response.status_code == 200
    assert isinstance(response.json(), list)
    texts = conversation.texts("Waarom is bewegen goed bij rugpijn?")
    assert citation_of(texts)  # the server keeps serving


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"[]", b'{"sender": "x"}', b'{"message": 5, "sender": "x"}', b"\xff\xfe"],
)
def test_malformed_json_is_refused_cleanly(stack, body):
    response = requests.post(stack.rest_url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code < 500
    texts = Conversation(stack.rest_url).texts("Wat is het verschil tussen acute en chronische rugpijn?")
    assert citation_of(texts) == "Verschil tussen acute en chronische rugpijn"


def test_the_rasa_server_runs_without_torch(stack, conversation):
    """bot/rasa_server.py: the embeddings run in onnxruntime, so torch's library is never loaded
    into the Rasa server (about 540 MB of memory each); the server answers from the article."""
    assert citation_of(conversation.texts("welke oefeningen helpen tegen rugpijn?"))
    mapped = Path(f"/proc/{stack.service('rasa').process.pid}/maps").read_text()
    assert "libtorch" not in mapped and "onnxruntime" in mapped


def test_conversations_are_stored_in_sqlite(stack, conversation):
    conversation.say("Wie heeft het artikel beoordeeld?")
    with sqlite3.connect(stack.tracker_db) as connection:
        rows = connection.execute("select count(*) from events where sender_id = ?", (conversation.sender,)).fetchone()
    assert rows[0] > 0


def test_product_mention_fits_and_comes_once(stack):
    conversation = Conversation(stack.rest_url)
    texts = conversation.texts("ik zit de hele dag op kantoor, wat kan ik zelf doen tegen rugpijn?")
    assert citation_of(texts)
    assert sum(text.startswith("Uit onze winkel: Ergonomisch Zitkussen") for text in texts) == 1
    again = conversation.texts("en wat kan ik nog meer zelf doen als ik lang zit?")
    assert citation_of(again) and not any("Uit onze winkel" in text for text in again)


def test_no_product_after_a_red_flag(stack):
    conversation = Conversation(stack.rest_url)
    assert any("huisarts" in text for text in conversation.texts("ik heb koorts en ik voel me echt heel ziek"))
    texts = conversation.texts("ik zit de hele dag op kantoor, wat kan ik zelf doen tegen rugpijn?")
    assert not any("Uit onze winkel" in text or "€" in text for text in texts)
