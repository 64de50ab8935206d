"""The staff page (/staff/ on the demo page's port, bot/web/staff.py) in a real browser (Debian's
chromium driven by Playwright), against the real stack (conftest's `stack`).

Conversations are seeded through REST under recognisable sender ids (article questions, gibberish,
vague questions, a red flag); the figures the page shows are compared with counts computed here
straight from the stack's SQLite tracker store (other tests' conversations are in it too, so
nothing is compared with a fixed number). Then: refused without the token (401), logged in through
the form (HttpOnly, SameSite=Strict cookie), the gibberish message is in the review queue and is
accepted as an example of an item, which lands in the examples file (REVIEWED_EXAMPLES, a temporary
file: never data/), and an escalated conversation shows its NLU decisions. Screenshots on a laptop
and a phone viewport go to tests/artifacts/screenshots/staff_*.png.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Dict, List
from urllib.parse import urlsplit

import pytest
import requests
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

from bot import paths
from bot.knowledge_base import load_knowledge_base
from bot.knowledge_base.rasa_files import article_rasa_files, written_examples
from bot.levels import max_level
from bot.staff.review import DEFAULT_REVIEWED_EXAMPLES, REVIEWED_EXAMPLES_VARIABLE, read_examples
from bot.tokens import secret
from bot.web.staff import COOKIE, SESSION_S, STAFF_TOKEN, session_cookie, valid_session
from conftest import SCREENSHOTS, Conversation

# Set while the tests are collected, before the session's stack starts (its servers inherit the
# environment): accepted examples go to a temporary file, never into data/nlu/.
os.environ.setdefault(REVIEWED_EXAMPLES_VARIABLE,
                      str(Path(tempfile.mkdtemp(prefix="reviewed-examples-")) / "reviewed_examples.yml"))

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 60_000
QUEUE_TIMEOUT_MS = 240_000
DAY_S = 86400.0
ESCALATION_LEVELS = ("soon", "urgent_now", "urgent_112")

RUN = uuid.uuid4().hex[:8]
# letters only: digits in a message may be redacted at rest ("wuzz 9555" reads as a postcode)
RUN_WORD = "".join(chr(ord("a") + int(digit, 16)) for digit in RUN)
ARTICLE_QUESTIONS = ["Welke oefeningen helpen tegen rugpijn?", "Wat is het DAVID Spine-programma?"]
GIBBERISH = f"xqzt vlorp grimbel wuzz {RUN_WORD}"
# vague questions: some get "Bedoel je…?" with buttons, some a low-confidence guess (which one depends
# on the trained model: the figures are compared with the store, whatever happened)
VAGUE = ["wat moet ik doen", "iets met mijn rug", "rugpijn bewegen ofzo", "hoe zit dat dan met de rug"]
RED_FLAG = "Ik heb rugpijn en kan sinds vanochtend mijn plas niet ophouden"
ACCEPT_AS = "faq_best_exercises"


@pytest.fixture(scope="module")
def seeded(stack) -> Dict[str, str]:
    """The conversations this module adds, by role: sender id."""
    senders = {role: f"staffpage-{RUN}-{role}" for role in ("article", "gibberish", "vague", "alarm")}
    article = Conversation(stack.rest_url, senders["article"])
    for question in ARTICLE_QUESTIONS:
        article.say(question)
    Conversation(stack.rest_url, senders["gibberish"]).say(GIBBERISH)
    vague = Conversation(stack.rest_url, senders["vague"])
    for text in VAGUE:
        vague.say(text)
    Conversation(stack.rest_url, senders["alarm"]).say(RED_FLAG)
    return senders


def stored(db: Path) -> Dict[str, List[Dict]]:
    """Every stored event per conversation, in order (straight from SQLite)."""
    conversations: Dict[str, List[Dict]] = {}
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT sender_id, type_name, timestamp, data FROM events ORDER BY id").fetchall()
    for sender, type_name, timestamp, data in rows:
        conversations.setdefault(sender, []).append({"type": type_name, "timestamp": timestamp, **json.loads(data)})
    return conversations


def outcome(message: Dict, following: List[Dict]) -> str:
    """What the assistant did about one visitor message, the first that applies (README "Staff
    channel", `!rapport`): referred, handed off, answered from the article (a citation), clarified
    ("Bedoel je…?": action_clarify with buttons), fallback (action_clarify without buttons, or a
    fallback / out-of-scope intent), other."""
    bots = [e for e in following if e["type"] == "bot"]
    levels = [((e.get("metadata") or {}).get("escalation") or {}).get("level") for e in bots]
    levels = [level for level in levels if level in ESCALATION_LEVELS]
    if levels:
        return f"escalated_{max_level(*levels)}"
    if any(e["type"] == "slot" and e.get("name") == "handoff_active" and e.get("value") is True for e in following):
        return "handed_off"
    if any((e.get("metadata") or {}).get("citation") for e in bots):
        return "answered"
    clarify = any(e["type"] == "action" and e.get("name") == "action_clarify" for e in following)
    if clarify and any((e.get("data") or {}).get("buttons") for e in bots):
        return "clarified"
    if clarify or ((message.get("parse_data") or {}).get("intent") or {}).get("name") in ("nlu_fallback", "out_of_scope"):
        return "fallback"
    return "other"


def figures_from_store(db: Path, start: float, end: float) -> Dict[str, int]:
    """The page's figures for [start, end), counted here from the rows: typed user messages (not `/`
    payloads) of conversations that are not staff (Matrix), each with its outcome (`outcome`);
    shares in whole percent."""
    talking, outcomes = set(), []
    for sender, events in stored(db).items():
        if any(e["type"] == "user" and e.get("input_channel") == "matrix" for e in events):
            continue
        users = [i for i, e in enumerate(events) if e["type"] == "user"] + [len(events)]
        for here, following in zip(users, users[1:]):
            event = events[here]
            text = (event.get("text") or "").strip()
            if not text or text.startswith("/") or not start <= event["timestamp"] < end:
                continue
            talking.add(sender)
            outcomes.append(outcome(event, events[here + 1:following]))
    counts = {name: outcomes.count(name) for name in
              ("handed_off", *(f"escalated_{level}" for level in ESCALATION_LEVELS))}
    shares = {name: round(100 * outcomes.count(name) / len(outcomes)) if outcomes else 0
              for name in ("answered", "clarified", "fallback")}
    return {"conversations": len(talking), "messages": len(outcomes), **counts, **shares}


def missed_messages(db: Path, senders) -> List[str]:
    """The texts of these conversations that got a fallback or "Bedoel je…?" (`outcome`)."""
    missed = []
    for sender, events in stored(db).items():
        if sender not in set(senders):
            continue
        users = [i for i, e in enumerate(events) if e["type"] == "user"] + [len(events)]
        for here, following in zip(users, users[1:]):
            if outcome(events[here], events[here + 1:following]) in ("fallback", "clarified"):
                missed.append(events[here]["text"])
    return missed


def shown_figures(page) -> Dict[str, int]:
    values = page.eval_on_selector_all("[data-figure]", "els => els.map(e => [e.dataset.figure, e.innerText])")
    return {name: int(re.sub(r"\D", "", text)) for name, text in values}


def new_page(browser, viewport: Dict[str, int], requests_seen: List[str]):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("request", lambda request: requests_seen.append(request.url))
    return context, page


def log_in(page, base: str, token: str, path: str = "/staff/") -> None:
    page.goto(base + path)
    page.fill("#token", token)
    with page.expect_navigation():
        page.click("form[action='/staff/login'] button[type=submit]")
    page.wait_for_selector("nav[aria-label=Hoofdmenu]")


pytestmark = pytest.mark.without_matrix  # the staff page needs no Matrix homeserver


def test_the_session_cookie() -> None:
    now = 1_800_000_000.0
    cookie = session_cookie("geheim", now)
    assert "geheim" not in cookie
    assert valid_session(cookie, "geheim", now + SESSION_S - 1)
    assert not valid_session(cookie, "geheim", now + SESSION_S + 1)  # expired
    assert not valid_session(cookie, "ander-token", now)  # signed under another token
    expires, signature = cookie.split(".")
    assert not valid_session(f"{int(expires) + 3600}.{signature}", "geheim", now)  # a longer life, forged
    assert not valid_session("", "geheim", now) and not valid_session("x.y", "geheim", now)


def test_refused_without_the_token(stack) -> None:
    base = stack.web_url
    assert requests.get(f"{base}/staff/", timeout=30).status_code == 401
    assert requests.get(f"{base}/staff/review", timeout=30).status_code == 401
    assert requests.get(f"{base}/staff/plots/daily.svg", timeout=30).status_code == 401
    assert requests.get(f"{base}/staff/", headers={"Authorization": "Bearer wrong"}, timeout=30).status_code == 401
    assert requests.get(f"{base}/staff/", cookies={COOKIE: f"{int(time.time()) + 3600}.forged"}, timeout=30).status_code == 401
    assert requests.post(f"{base}/staff/login", data={"token": "wrong"}, allow_redirects=False, timeout=30).status_code == 401
    ok = requests.get(f"{base}/staff/", headers={"Authorization": f"Bearer {secret(STAFF_TOKEN)}"}, timeout=60)
    assert ok.status_code == 200 and "data-figure" in ok.text
    assert "script-src" not in ok.headers["Content-Security-Policy"]  # no script at all: default-src 'none'
    assert ok.headers["Cache-Control"] == "no-store"
    # a form from another site is refused even with the token
    assert requests.post(f"{base}/staff/review/1", data={"decision": "dismissed"}, timeout=30,
                         headers={"Authorization": f"Bearer {secret(STAFF_TOKEN)}", "Origin": "http://evil.example"}
                         ).status_code == 403


def test_figures_queue_accept_and_conversation(stack, seeded, browser) -> None:
    base = stack.web_url
    token = secret(STAFF_TOKEN)
    examples = Path(os.environ[REVIEWED_EXAMPLES_VARIABLE])
    committed = DEFAULT_REVIEWED_EXAMPLES.read_text() if DEFAULT_REVIEWED_EXAMPLES.exists() else None
    assert examples != DEFAULT_REVIEWED_EXAMPLES
    seen: List[str] = []
    context, page = new_page(browser, LAPTOP, seen)
    try:
        response = page.goto(f"{base}/staff/")
        assert response.status == 401
        assert page.locator("#token").is_visible()
        log_in(page, base, token)
        assert urlsplit(page.url).path == "/staff/"
        cookie = next(c for c in context.cookies() if c["name"] == COOKIE)
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and token not in cookie["value"]

        # the figures equal what the store holds (the page's window: the 7 days before it was made)
        before = time.time()
        page.goto(f"{base}/staff/?days=7")
        after = time.time()
        shown = shown_figures(page)
        expected = figures_from_store(stack.tracker_db, after - 7 * DAY_S, after)
        assert expected == figures_from_store(stack.tracker_db, before - 7 * DAY_S, before)  # nothing moved meanwhile
        assert {name: shown[name] for name in expected} == expected
        assert expected["messages"] >= len(ARTICLE_QUESTIONS) + 1 + len(VAGUE) + 1
        assert expected["escalated_urgent_now"] + expected["escalated_urgent_112"] >= 1
        assert expected["answered"] > 0 and expected["fallback"] > 0
        # every plot is an SVG the browser drew
        plots = page.locator(".plot img")
        assert plots.count() == 3
        for index in range(plots.count()):
            plots.nth(index).scroll_into_view_if_needed()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=plots.nth(index).element_handle())
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "staff_overview_laptop.png"), full_page=True)

        # the referral is listed and its conversation shows the NLU decision per turn
        page.click(f"#escalations a[href='/staff/conversations/{seeded['alarm']}']")
        page.wait_for_selector(".turns")
        user_turn = page.locator(".turn.user").first
        assert RED_FLAG in user_turn.inner_text()
        assert "report_warning_sign" in user_turn.inner_text()
        assert re.search(r"urgent_now|urgent_112", user_turn.inner_text())
        assert page.locator(".turn.bot.escalated").count() >= 1
        page.screenshot(path=str(SCREENSHOTS / "staff_conversation_laptop.png"), full_page=True)

        # every seeded message the store shows was fallen back on or clarified is in the review queue
        # (the first visit may encode every stored message: a long wait when the whole suite ran)
        page.goto(f"{base}/staff/review", timeout=QUEUE_TIMEOUT_MS)
        missed = missed_messages(stack.tracker_db, seeded.values())
        assert GIBBERISH in missed
        queued_texts = page.locator("li.queued .text").all_inner_texts()
        for text in missed:
            assert f"“{text}”" in queued_texts, text
        # accept the gibberish as an example of an item
        entry = page.locator("li.queued", has_text=GIBBERISH)
        assert entry.count() == 1
        assert re.search(r"niet begrepen|Bedoel je", entry.inner_text())
        event_id = entry.get_attribute("data-event")
        entry.locator("select[name=item]").select_option(ACCEPT_AS)
        entry.locator("button[value=accepted]").click()
        page.wait_for_selector(".notice")
        assert "Toegevoegd" in page.locator(".notice").inner_text()
        assert page.locator(f"li.queued[data-event='{event_id}']").count() == 0
        assert GIBBERISH in read_examples(examples)[ACCEPT_AS]
        generated = article_rasa_files(load_knowledge_base(paths.knowledge_base_path()), paths.DOMAIN.read_text(encoding="utf-8"),
                                       written_examples(paths.ARTICLE_EXAMPLES, examples))
        training = RasaYAMLReader().reads(generated.nlu)  # what `make build` hands `make train`
        assert (ACCEPT_AS, GIBBERISH) in {(m.get("intent"), m.get("text")) for m in training.intent_examples}
        current = DEFAULT_REVIEWED_EXAMPLES.read_text() if DEFAULT_REVIEWED_EXAMPLES.exists() else None
        assert current == committed, "the test wrote into data/article/reviewed_examples.yml"
        page.screenshot(path=str(SCREENSHOTS / "staff_review_laptop.png"), full_page=True)
    finally:
        context.close()

    # on a phone: readable, nothing wider than the screen
    context, page = new_page(browser, PHONE, seen)
    try:
        log_in(page, base, token, "/staff/?days=7")
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
        page.screenshot(path=str(SCREENSHOTS / "staff_overview_phone.png"), full_page=True)
        page.goto(f"{base}/staff/review", timeout=QUEUE_TIMEOUT_MS)
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
        page.screenshot(path=str(SCREENSHOTS / "staff_review_phone.png"))
        # logging out ends the session
        with page.expect_navigation():
            page.click("form[action='/staff/logout'] button")
        assert not any(c["name"] == COOKIE for c in context.cookies())
        assert page.goto(f"{base}/staff/").status == 401
    finally:
        context.close()
    assert {urlsplit(url).hostname for url in seen} <= LOCAL_HOSTS, "a request left the machine"
