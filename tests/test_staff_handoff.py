"""Hand-off pieces without servers: the redacted transcript, the notifiers (against a local fake API), the
registration file, and the hand-off action for visitors and staff."""
from __future__ import annotations

import re
from typing import Dict, List

import pytest
import yaml
from aiohttp import web

from bot.replies import reply
from bot.channels.matrix import registration_yaml
from bot.staff.handoff import transcript
from bot.staff.mirror import HandOffMirror, concerns_hand_offs, mirror_text
from bot.staff.outbox import Outbox
from bot.staff.notifiers import (
    MatrixNotifier, MatrixSettings, SlackNotifier, TelegramNotifier, staff_notifier_from_env,
)
from test_actions import tracker

MATRIX_ENV = {
    "MATRIX_HOMESERVER_URL": "https://matrix.example.org/", "MATRIX_AS_TOKEN": "as", "MATRIX_HS_TOKEN": "hs",
    "MATRIX_BOT_USER": "@rugpijn-assistent:example.org", "MATRIX_STAFF_ROOM": "!staff:example.org",
}


def test_transcript_keeps_the_last_turns_redacted():
    events = [{"event": "user", "text": f"vraag {n} van a@b.nl"} for n in range(8)] + [{"event": "action", "name": "x"}]
    lines = transcript(events, ["het antwoord"], turns=3)
    assert lines == ["bezoeker: vraag 6 van [e-mail]", "bezoeker: vraag 7 van [e-mail]", "assistent: het antwoord"]


def test_notifier_chosen_by_environment():
    assert staff_notifier_from_env({}) is None
    assert isinstance(staff_notifier_from_env(MATRIX_ENV), MatrixNotifier)
    slack = {"SLACK_BOT_TOKEN": "xoxb", "SLACK_STAFF_CHANNEL": "C1"}
    telegram = {"TELEGRAM_BOT_TOKEN": "1:a", "TELEGRAM_STAFF_CHAT_ID": "-100"}
    assert isinstance(staff_notifier_from_env(slack), SlackNotifier)
    assert isinstance(staff_notifier_from_env(telegram), TelegramNotifier)
    assert isinstance(staff_notifier_from_env({**MATRIX_ENV, **telegram, "STAFF_NOTIFIER": "telegram"}), TelegramNotifier)
    assert staff_notifier_from_env({**MATRIX_ENV, "MATRIX_AS_TOKEN": ""}) is None
    with pytest.raises(ValueError):
        staff_notifier_from_env({"STAFF_NOTIFIER": "fax"})


@pytest.fixture
async def fake_api():
    """A local stand-in for the Slack, Telegram and Matrix APIs that records what it receives."""
    received: List[Dict] = []

    async def record(request: web.Request) -> web.Response:
        received.append({"path": request.path, "auth": request.headers.get("Authorization"), "json": await request.json()})
        return web.json_response({"ok": True, "event_id": "$e"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


async def test_each_notifier_posts_the_text(fake_api):
    url, received = fake_api
    await SlackNotifier("C1", "xoxb-1", api_url=url).post("slack tekst")
    await SlackNotifier(webhook_url=f"{url}/hook").post("webhook tekst")
    await TelegramNotifier("1:abc", "-100", api_url=url).post("telegram tekst")
    settings = MatrixSettings.from_env({**MATRIX_ENV, "MATRIX_HOMESERVER_URL": url})
    await MatrixNotifier(settings).post("matrix tekst")
    slack, hook, telegram, matrix = received
    assert slack == {"path": "/chat.postMessage", "auth": "Bearer xoxb-1", "json": {"channel": "C1", "text": "slack tekst"}}
    assert hook["path"] == "/hook" and hook["json"] == {"text": "webhook tekst"}
    assert telegram["path"] == "/bot1:abc/sendMessage" and telegram["json"] == {"chat_id": "-100", "text": "telegram tekst"}
    assert re.fullmatch(r"/_matrix/client/v3/rooms/!staff:example.org/send/m.room.message/\w+", matrix["path"])
    assert matrix["auth"] == "Bearer as" and matrix["json"] == {"msgtype": "m.notice", "body": "matrix tekst"}


def test_registration_file():
    settings = MatrixSettings.from_env(MATRIX_ENV)
    registration = yaml.safe_load(registration_yaml(settings, "http://rasa:5005/webhooks/matrix"))
    assert registration["url"] == "http://rasa:5005/webhooks/matrix"
    assert (registration["as_token"], registration["hs_token"], registration["sender_localpart"]) == ("as", "hs", "rugpijn-assistent")
    (users,) = registration["namespaces"]["users"]
    assert users["exclusive"] and re.fullmatch(users["regex"], "@rugpijn-assistent:example.org")
    assert not re.fullmatch(users["regex"], "@rugpijn-assistentX:example.org")


class RecordingNotifier:
    def __init__(self) -> None:
        self.posts: List[str] = []

    async def post(self, text: str) -> None:
        self.posts.append(text)


def hand_off_state(channel: str = "rest") -> Dict:
    state = tracker(text="ik wil een medewerker spreken", intent="request_human")
    state["events"] = [
        {"event": "user", "text": "mijn nummer is 0612345678", "input_channel": channel},
        {"event": "bot", "text": "Sorry, dat begrijp ik niet goed."},
        {"event": "user", "text": "ik wil een medewerker spreken", "input_channel": channel},
    ]
    return state


@pytest.fixture
def outbox(tmp_path, monkeypatch) -> Outbox:
    """A fresh staff-notice outbox for this test (the actions queue notices there)."""
    box = Outbox(tmp_path / "outbox.db")
    monkeypatch.setattr("bot.staff.handoff.default_outbox", lambda: box)
    return box


async def test_hand_off_notifies_staff(executor, domain, monkeypatch, outbox):
    notifier = RecordingNotifier()
    monkeypatch.setattr("bot.staff.handoff.staff_notifier_from_env", lambda: notifier)
    monkeypatch.setenv("HANDOFF_CONTACT_TIME", "twee uur")
    result = await executor.run({"next_action": "action_hand_off", "sender_id": "bezoeker-1", "tracker": hand_off_state(), "domain": domain, "version": "3.6.2"})
    assert notifier.posts == [] and outbox.pending() == 1  # queued: the reply does not wait for staff
    assert await outbox.deliver_due(notifier) == 1
    (response,) = result["responses"]
    assert "collega" in response["text"] and "binnen twee uur" in response["text"]
    assert {"event": "slot", "timestamp": None, "name": "handoff_active", "value": True} in result["events"]
    (notice,) = notifier.posts
    assert "Gesprek: test (kanaal: rest)" in notice and "!antwoord test" in notice
    assert "[telefoonnummer]" in notice and "0612345678" not in notice


async def test_hand_off_without_staff_channel_gives_the_contact_details(executor, domain, monkeypatch):
    monkeypatch.setattr("bot.staff.handoff.staff_notifier_from_env", lambda: None)
    result = await executor.run({"next_action": "action_hand_off", "sender_id": "t", "tracker": hand_off_state(), "domain": domain, "version": "3.6.2"})
    assert [r["text"] for r in result["responses"]] == [reply("hand_off_unavailable")]
    assert result["events"] == []


async def test_staff_asking_for_a_person_get_the_policy_text(executor, domain, monkeypatch, outbox):
    notifier = RecordingNotifier()
    monkeypatch.setattr("bot.staff.handoff.staff_notifier_from_env", lambda: notifier)
    result = await executor.run({"next_action": "action_hand_off", "sender_id": "t", "tracker": hand_off_state("matrix"), "domain": domain, "version": "3.6.2"})
    assert result["responses"][0]["text"].startswith("Beleidstekst (niveau overdracht): ")
    assert notifier.posts == [] and result["events"] == []


async def test_mirror_follows_the_hand_off_slot():
    notifier = RecordingNotifier()
    mirror = HandOffMirror(notifier)
    mirror.publish({"sender_id": "a", "event": "user", "text": "voor de overdracht"})
    mirror.publish({"sender_id": "a", "event": "slot", "name": "handoff_active", "value": True})
    mirror.publish({"sender_id": "a", "event": "user", "text": "tijdens"})
    mirror.publish({"sender_id": "b", "event": "user", "text": "ander gesprek"})
    mirror.publish({"sender_id": "a", "event": "slot", "name": "handoff_active", "value": False})
    mirror.publish({"sender_id": "a", "event": "user", "text": "erna"})
    await mirror.close()
    assert notifier.posts == ["[a] bezoeker: tijdens"]


OTHER_EVENTS = [
    {"sender_id": "a", "event": "action", "name": "action_listen"},
    {"sender_id": "a", "event": "bot", "text": "Bewegen helpt."},
    {"sender_id": "a", "event": "slot", "name": "escalation_level", "value": "urgent"},
    {"sender_id": "a", "event": "session_started"},
    {"sender_id": "a", "event": "user_featurization", "use_text_for_featurization": False},
]


@pytest.mark.parametrize("event", OTHER_EVENTS)
def test_the_consumer_skips_only_events_the_mirror_ignores(event):
    """bot/staff/consumer.py acknowledges events `concerns_hand_offs` rejects without the mirror:
    for those, the mirror returns nothing and leaves the open hand-offs as they were."""
    open_handoffs = {"a"}
    assert not concerns_hand_offs(event)
    assert mirror_text(event, open_handoffs) is None and open_handoffs == {"a"}
    assert concerns_hand_offs({"sender_id": "a", "event": "user", "text": "hallo"})
    assert concerns_hand_offs({"sender_id": "a", "event": "slot", "name": "handoff_active", "value": None})


def test_reply_fallback_is_dropped():
    from bot.channels.matrix import without_reply_fallback

    quoted = "> <@rugpijn-assistent:localhost> Overdracht: …\n> Gesprek: abc\n\n!antwoord abc Hallo"
    assert without_reply_fallback(quoted) == "!antwoord abc Hallo"
    assert without_reply_fallback("gewoon een vraag\n> citaat") == "gewoon een vraag\n> citaat"


def test_staff_channels_default_to_matrix_only():
    from bot.staff.notifiers import staff_channels

    assert staff_channels({}) == frozenset({"matrix"})
    assert staff_channels({"STAFF_CHANNELS": "matrix, slack"}) == frozenset({"matrix", "slack"})
