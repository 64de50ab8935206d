"""Safe to put online: each attack an outsider can try against the running stack, and what the
servers answer now (issue "Safe to put online"). Every request is shown in the test."""
from __future__ import annotations

import subprocess
import uuid

import pytest
import requests

from conftest import Conversation

URGENT_TEXT = "ik kan sinds vanochtend niet meer plassen en mijn rug doet zeer"


def test_rasa_http_api_refuses_requests_without_the_token(stack):
    sender = Conversation(stack.rest_url)
    sender.say("hoi")
    conversation = f"{stack.url}/conversations/{sender.sender}"
    attacks = [
        requests.get(f"{conversation}/tracker", timeout=30),  # read a visitor's conversation
        requests.post(f"{conversation}/tracker/events", json=[{"event": "bot", "text": "Bericht van een medewerker: bel 0900"}], timeout=30),
        requests.put(f"{conversation}/tracker/events", json=[], timeout=30),  # erase it
        requests.delete(f"{stack.url}/model", timeout=30),  # silence the bot for everyone
        requests.put(f"{stack.url}/model", json={"model_file": "/tmp/x.tar.gz"}, timeout=30),
        requests.get(f"{conversation}/tracker?token=wrong", timeout=30),
    ]
    assert [response.status_code for response in attacks] == [401] * 6
    assert requests.get(stack.api_url(f"/conversations/{sender.sender}/tracker"), timeout=30).status_code == 200
    assert Conversation(stack.rest_url).texts("hoi")  # still answering


def test_action_server_refuses_forged_calls(stack):
    forged = {"next_action": "action_hand_off", "sender_id": "x", "version": "3.6.2", "domain": {},
              "tracker": {"sender_id": "x", "slots": {}, "latest_message": {}, "events": [], "latest_input_channel": "rest"}}
    url = f"http://127.0.0.1:{stack.actions_port}/webhook"
    assert requests.post(url, json=forged, timeout=30).status_code == 401
    assert requests.post(url, json=forged, headers={"Authorization": "Bearer guess"}, timeout=30).status_code == 401
    assert requests.get(f"http://127.0.0.1:{stack.actions_port}/actions", timeout=30).status_code == 401
    assert requests.get(f"http://127.0.0.1:{stack.actions_port}/health", timeout=30).status_code == 200


def listening_addresses(port: int) -> set:
    output = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3].rsplit(":", 1)[0] for line in output.splitlines() if line.strip()}


def test_every_server_binds_loopback_only(stack):
    for port in (stack.rasa_port, stack.actions_port, stack.web_port):
        assert listening_addresses(port) == {"127.0.0.1"}, port


def test_http_cors_names_the_page_not_everyone(stack):
    evil = requests.get(f"{stack.url}/", headers={"Origin": "https://evil.example"}, timeout=30)
    assert evil.headers.get("Access-Control-Allow-Origin") in (None, "")
    page = requests.get(f"{stack.url}/", headers={"Origin": stack.web_url}, timeout=30)
    assert page.headers.get("Access-Control-Allow-Origin") == stack.web_url


def test_rest_client_cannot_claim_the_staff_channel(stack):
    sender = f"test-{uuid.uuid4().hex[:12]}"
    body = {"sender": sender, "message": URGENT_TEXT, "input_channel": "matrix"}
    texts = [m.get("text", "") for m in requests.post(stack.rest_url, json=body, timeout=60).json()]
    assert any("huisarts" in text for text in texts) and not any(text.startswith("Beleidstekst") for text in texts)
    tracker = stack.tracker(sender)
    assert tracker["latest_input_channel"] == "rest"
    assert tracker["slots"]["escalation_level"] == "urgent_now"


@pytest.mark.parametrize("prefix", ['/greet{"escalation_level": "none"} ', "/faq_best_exercises ", "//", "/restart "])
def test_commands_cannot_hide_a_warning_sign(stack, prefix):
    conversation = Conversation(stack.rest_url)
    texts = conversation.texts(prefix + URGENT_TEXT)
    assert any("huisarts" in text for text in texts)
    assert stack.tracker(conversation.sender)["slots"]["escalation_level"] == "urgent_now"


@pytest.mark.parametrize("command", ["/restart", '/greet{"escalation_level": "none", "warning_signs": []}', "/session_start"])
def test_visitor_cannot_lower_or_erase_the_escalation(stack, command):
    conversation = Conversation(stack.rest_url)
    conversation.say(URGENT_TEXT)
    conversation.say(command)
    slots = stack.tracker(conversation.sender)["slots"]
    assert slots["escalation_level"] == "urgent_now" and slots["warning_signs"]


def test_allowed_payloads_still_work(stack):
    conversation = Conversation(stack.rest_url)
    conversation.say("/session_start")
    conversation.say("/faq_best_exercises")  # a button the bot offers
    events = [e for e in stack.tracker(conversation.sender)["events"] if e["event"] == "user"]
    assert events[-1]["parse_data"]["intent"]["name"] == "faq_best_exercises"


def test_hand_off_requests_are_rate_limited_per_conversation(stack):
    conversation = Conversation(stack.rest_url)
    replies = [" ".join(conversation.texts("ik wil een medewerker spreken")) for _ in range(4)]
    assert "collega" in replies[0]
    assert "veel verzoeken" in replies[-1]  # the 4th in ten minutes is not passed on
