"""`make cluster` on this machine: two Rasa servers behind nginx, sharing PostgreSQL (tracker
store), Redis (lock store, socket.io rooms) and RabbitMQ (event broker) (bot/cluster.py).

Everything goes through nginx's one entry, as a browser's requests would; nginx's access log says
which Rasa server answered. The run owns its database, Redis keys, queue and exchange (unique
names) and deletes them afterwards. The last test kills a Rasa server (SIGKILL) during a load of 8
conversations and checks what visitors got against what PostgreSQL holds; its figures go to
tests/artifacts/cluster_fault.json.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional

import aiohttp
import psycopg2
import pytest
import requests
import socketio

from bot.cluster import Cluster, SharedNames, cluster_endpoints, drop_shared_state, nginx_binary, running_cluster
from bot.channels.webchat import REDIS_CHANNEL_KEY, REDIS_URL_KEY, REDIS_URL_VARIABLE, WebchatInput
from bot.stack import RASA_MODEL
from conftest import ARTIFACTS, Conversation, citation_of

REPLICAS = 2
REPLY_TIMEOUT = 60.0
# A Rasa server killed while it holds a conversation's lock blocks that conversation this long.
LOCK_LIFETIME_S = 15
# Inputs: article questions without digits or names (redaction at rest leaves them as typed).
QUESTIONS = [
    "Welke oefeningen helpen tegen rugpijn?",
    "Is bewegen goed bij rugpijn?",
    "Wat is het DAVID Spine-programma?",
    "Hoe lang duurt het voordat rugpijn overgaat?",
]
LOAD_CONVERSATIONS = 8
KILL_AFTER_REPLIES = 6  # the replica dies while the load is well under way
UPSTREAM = re.compile(r'"(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d+) upstream=(?P<upstream>.*?) upstream_status=')


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    if not RASA_MODEL.exists():
        pytest.fail(f"{RASA_MODEL} is missing: run `make train` (make test does it)")
    try:
        nginx_binary()
    except FileNotFoundError as error:
        pytest.fail(str(error))
    names = SharedNames.unique()
    logs = ARTIFACTS / "logs" / "cluster"
    env = {"TICKET_LOCK_LIFETIME": str(LOCK_LIFETIME_S), "HANDOFF_TOTAL": "100000"}
    try:
        with running_cluster(replicas=REPLICAS, names=names, work_dir=tmp_path_factory.mktemp("cluster"),
                             log_dir=logs, env=env) as running:
            yield running
        # stopped: every child, nginx included, and nothing listens on the entry any more
        assert all(process.poll() is not None for process in running.processes)
        with pytest.raises(requests.ConnectionError):
            requests.get(running.public_url, timeout=5)
    finally:
        drop_shared_state(cluster_endpoints(0, names))


@pytest.mark.parametrize("credentials, shared_channel", [
    ({}, None),  # make run: one server, python-socketio's own manager
    ({REDIS_URL_KEY: "redis://127.0.0.1:6379/0", REDIS_CHANNEL_KEY: "rugpijn:socketio"}, "rugpijn:socketio"),
])
def test_socketio_rooms_are_shared_through_redis_only_when_configured(credentials, shared_channel, monkeypatch):
    monkeypatch.delenv(REDIS_URL_VARIABLE, raising=False)
    channel = WebchatInput.from_credentials({"user_message_evt": "user_uttered", "bot_message_evt": "bot_uttered", **credentials})

    async def on_new_message(message) -> None:
        pass

    channel.blueprint(on_new_message)
    manager = channel.sio.manager
    if shared_channel is None:
        assert type(manager) is socketio.AsyncManager
    else:
        assert isinstance(manager, socketio.AsyncRedisManager) and manager.channel == shared_channel
        assert manager.server is channel.sio


def upstreams(cluster: Cluster, path_prefix: str) -> List[str]:
    """The Rasa server (host:port) nginx sent each request under `path_prefix` to, in order (a
    retried request: "first, second")."""
    result = []
    for line in cluster.access_log.read_text(encoding="utf-8").splitlines():
        match = UPSTREAM.search(line)
        if match and match["path"].startswith(path_prefix):
            result.append(match["upstream"])
    return result


def stored_user_texts(cluster: Cluster, senders: List[str]) -> Dict[str, List[str]]:
    """The visitor messages PostgreSQL holds per conversation, in the order they were stored."""
    tracker_store = cluster.endpoints["tracker_store"]
    texts: Dict[str, List[str]] = {sender: [] for sender in senders}
    with contextlib.closing(psycopg2.connect(host=tracker_store["url"], port=tracker_store["port"],
                                             user=tracker_store["username"], dbname=tracker_store["db"])) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT sender_id, data FROM events WHERE type_name = 'user' AND sender_id = ANY(%s) ORDER BY id",
                           (senders,))
            for sender, data in cursor.fetchall():
                texts[sender].append(json.loads(data).get("text"))
    return texts


def test_page_is_served_through_nginx_with_the_widget_on_the_same_entry(cluster):
    response = requests.get(f"{cluster.public_url}/", timeout=30)
    assert response.status_code == 200
    config = re.search(r'<script id="webchat-config" type="application/json">(.*?)</script>', response.text, re.S)
    assert config, "the page has no chat widget"
    assert json.loads(config.group(1))["widget"]["socketUrl"] == cluster.public_url
    assert f"connect-src 'self' {cluster.public_url}" in response.headers["Content-Security-Policy"]
    bundle = re.search(r'src="(/static/webchat\.js\?v=\w+)"', response.text)
    assert bundle and requests.get(f"{cluster.public_url}{bundle.group(1)}", timeout=30).status_code == 200


def test_rest_answers_with_a_source_and_both_replicas_answer(cluster):
    conversations = [Conversation(cluster.rest_url) for _ in range(2 * REPLICAS)]
    for conversation in conversations:
        assert citation_of(conversation.texts(QUESTIONS[0])), "an article question without a Bron: line"
    used = upstreams(cluster, "/webhooks/rest/")
    replicas = {f"127.0.0.1:{port}" for port in cluster.replica_ports}
    assert set(used) == replicas, f"nginx sent REST to {Counter(used)}, expected every one of {replicas}"
    stored = stored_user_texts(cluster, [conversation.sender for conversation in conversations])
    assert all(texts == [QUESTIONS[0]] for texts in stored.values()), stored


@dataclass
class SocketVisitor:
    """rasa-webchat's protocol over python-socketio's asyncio client (websocket transport)."""

    client: socketio.AsyncClient
    texts: List[str]
    confirmations: List[Dict]

    @classmethod
    def create(cls) -> "SocketVisitor":
        visitor = cls(socketio.AsyncClient(), [], [])
        visitor.client.on("bot_uttered", lambda data: visitor.texts.append((data or {}).get("text") or ""))
        visitor.client.on("session_confirm", visitor.confirmations.append)
        return visitor

    async def wait_for(self, condition, what: str) -> None:
        deadline = time.monotonic() + REPLY_TIMEOUT
        while not condition():
            assert time.monotonic() < deadline, f"no {what} within {REPLY_TIMEOUT:.0f} s (got {self.texts})"
            await asyncio.sleep(0.05)


async def staff_reply(cluster: Cluster, replica: int, conversation_id: str, text: str) -> None:
    """A bot message into the conversation through one Rasa server's HTTP API, sent to the
    conversation's latest channel (as the Matrix channel's `!antwoord` does)."""
    query = urllib.parse.urlencode({"output_channel": "latest", "execute_side_effects": "true", "token": cluster.api_token})
    url = f"{cluster.replica_url(replica)}/conversations/{conversation_id}/tracker/events?{query}"
    response = await asyncio.to_thread(requests.post, url, json=[{"event": "bot", "text": text}], timeout=REPLY_TIMEOUT)
    assert response.status_code == 200, response.text


@pytest.fixture
def websocket_client(monkeypatch):
    """python-engineio 4.15's asyncio client names `aiohttp.ClientWSTimeout` (aiohttp 3.10+) for
    the WebSocket transport; with aiohttp 3.9 (pinned for Rasa 3.6) `ws_connect(timeout=…)` takes
    that close timeout as a number."""
    if not hasattr(aiohttp, "ClientWSTimeout"):
        monkeypatch.setattr(aiohttp, "ClientWSTimeout", lambda ws_close=10.0, ws_receive=None: ws_close, raising=False)


async def test_socketio_through_nginx_and_staff_replies_from_every_replica(cluster, websocket_client):
    visitor = SocketVisitor.create()
    await visitor.client.connect(cluster.public_url, socketio_path="/socket.io", transports=["websocket"], wait_timeout=30)
    try:
        assert visitor.client.transport() == "websocket"
        await visitor.client.emit("session_request", {"session_id": None})
        await visitor.wait_for(lambda: visitor.confirmations, "session_confirm")
        conversation_id = visitor.confirmations[0]["session_id"]
        await visitor.client.emit("user_uttered", {"message": QUESTIONS[1], "session_id": conversation_id})
        await visitor.wait_for(lambda: citation_of(visitor.texts), "answer with a Bron: line")
        # The socket lives on one Rasa server; a staff reply through each server reaches it, so at
        # least one crossed from one server to the other (socket.io rooms shared through Redis).
        for replica in range(REPLICAS):
            text = f"Bericht van een medewerker via server {replica}: {uuid.uuid4().hex[:6]}"
            await staff_reply(cluster, replica, conversation_id, text)
            await visitor.wait_for(lambda: text in visitor.texts, f"staff reply through server {replica}")
    finally:
        await visitor.client.disconnect()
    assert stored_user_texts(cluster, [conversation_id])[conversation_id] == [QUESTIONS[1]]
    assert upstreams(cluster, "/socket.io/"), "the socket did not go through nginx"


def wait_until(condition, message: str) -> None:
    deadline = time.monotonic() + REPLY_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def test_socketio_polling_stays_on_one_replica(cluster):
    """The widget starts on HTTP long-polling: each poll must reach the server that holds the
    session (nginx hashes on the client address), else the server answers 400 and the widget
    reconnects over and over."""
    before = len(upstreams(cluster, "/socket.io/"))
    client, texts, confirmations = socketio.Client(), [], []
    client.on("bot_uttered", lambda data: texts.append((data or {}).get("text") or ""))
    client.on("session_confirm", confirmations.append)
    client.connect(cluster.public_url, socketio_path="/socket.io", transports=["polling"], wait_timeout=30)
    try:
        client.call("session_request", {"session_id": None}, timeout=30)
        wait_until(lambda: confirmations, "no session_confirm over polling")
        client.call("user_uttered", {"message": QUESTIONS[2], "session_id": confirmations[0]["session_id"]}, timeout=REPLY_TIMEOUT)
        wait_until(lambda: citation_of(texts), f"no answer with a Bron: line over polling (got {texts})")
    finally:
        client.disconnect()
    polls = upstreams(cluster, "/socket.io/")[before:]
    assert len(polls) >= 3 and len(set(polls)) == 1, Counter(polls)


@dataclass
class Sent:
    sender: str
    text: str
    started: float
    replied: bool = False
    error: Optional[str] = None


def visit(url: str, sender: str, log: List[Sent], lock: threading.Lock, replies: threading.Semaphore) -> None:
    """One visitor asking QUESTIONS one after the other, whatever happens to a message."""
    for text in QUESTIONS:
        sent = Sent(sender, text, time.monotonic())
        with lock:
            log.append(sent)
        try:
            response = requests.post(url, json={"sender": sender, "message": text}, timeout=REPLY_TIMEOUT)
            sent.replied = response.status_code == 200 and bool(response.json())
            sent.error = None if sent.replied else f"HTTP {response.status_code}"
        except requests.RequestException as error:
            sent.error = type(error).__name__
        if sent.replied:
            replies.release()


def test_killing_a_replica_under_load_loses_no_answered_message(cluster):
    log: List[Sent] = []
    lock, replies = threading.Lock(), threading.Semaphore(0)
    senders = [f"load-{uuid.uuid4().hex[:12]}" for _ in range(LOAD_CONVERSATIONS)]
    before = len(upstreams(cluster, "/webhooks/rest/"))
    threads = [threading.Thread(target=visit, args=(cluster.rest_url, sender, log, lock, replies), daemon=True)
               for sender in senders]
    for thread in threads:
        thread.start()
    for _ in range(KILL_AFTER_REPLIES):
        assert replies.acquire(timeout=REPLY_TIMEOUT), "the load got no replies before the kill"
    victim = cluster.replicas[0]
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(timeout=10)
    killed_at = time.monotonic()
    for thread in threads:
        thread.join(timeout=len(QUESTIONS) * REPLY_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a visitor was still waiting"

    stored = stored_user_texts(cluster, senders)
    during_load = upstreams(cluster, "/webhooks/rest/")[before:]
    failed = [sent for sent in log if not sent.replied]
    figures = {
        "conversations": LOAD_CONVERSATIONS,
        "sent": len(log),
        "replied": len(log) - len(failed),
        "errors": len(failed),
        "error_kinds": dict(Counter(sent.error for sent in failed)),
        "failed_but_stored": sum(stored[sent.sender].count(sent.text) for sent in failed),
        "sent_after_kill": sum(sent.started >= killed_at for sent in log),
        "upstreams_during_load": dict(Counter(during_load)),  # "a, b": a refused, sent to b
        "moved_by_nginx": sum(", " in upstream for upstream in during_load),
        "killed": f"127.0.0.1:{cluster.replica_ports[0]}",
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "cluster_fault.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(figures))

    assert victim.process.returncode == -signal.SIGKILL
    assert len(log) == LOAD_CONVERSATIONS * len(QUESTIONS)
    # Only the messages the dead server was working on can fail; everything sent later is answered.
    assert len(failed) <= LOAD_CONVERSATIONS, figures
    assert all(sent.replied for sent in log if sent.started >= killed_at), [asdict(s) for s in failed]
    assert figures["sent_after_kill"] > 0, figures
    for sender in senders:
        sent_texts = [sent.text for sent in log if sent.sender == sender]
        # stored once at most, in the order sent (a subsequence of what was sent)
        assert len(stored[sender]) == len(set(stored[sender])), (sender, stored[sender])
        assert [text for text in sent_texts if text in stored[sender]] == stored[sender], (sender, stored[sender])
        # every answered message exactly once
        answered = {sent.text for sent in log if sent.sender == sender and sent.replied}
        assert answered <= set(stored[sender]), (sender, answered, stored[sender])
