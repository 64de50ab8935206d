"""Faults, bounded in count and time, on loopback only:

- Redis restarted under a load of lock acquire/release (bot/stores/lock_store.py): a redis-server
  of this test's own, killed and started again; the errors are counted and must stop within seconds.
- PostgreSQL unreachable for 10 s (a TCP proxy between the Rasa server and PostgreSQL, cut): the
  visitor gets 503 and sends again; every message that got a reply is stored exactly once. Through
  the widget (socket.io), which has no status code, the visitor is told to send it again.
- RabbitMQ unreachable (a TCP proxy in front of it, cut), then the staff consumer down: the
  mirrored messages of an open hand-off reach the staff webhook (a local HTTP server) each once.

One stack (action server + Rasa server, PostgreSQL tracker store, RabbitMQ event broker) and one
staff consumer for the module; its own PostgreSQL database, Redis key prefix, RabbitMQ exchange and
queue, all removed afterwards."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import aio_pika
import psycopg2
import pytest
import requests
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.lock_store import LockError
from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot import rasa_patches
from bot.channels.store_unavailable import told_when_unavailable
from bot.replies import reply
from bot.stack import ROOT, Stack, running_stack, server_environment
from bot.stores.lock_store import AtomicRedisLockStore
from bot.stores.tracker_store import TrackerStoreUnavailable
from fault_tools import (
    POSTGRES, RABBITMQ_PORT, RedisServer, TcpProxy, WebhookRecorder, postgres_database,
    tracker_store_section, unique_name,
)
from test_webchat_sessions import Visitor

LOGS = ROOT / "tests" / "artifacts" / "logs" / "faults"  # this module's servers only

# Redis restart
LOAD_S = 8.0
KILL_AT_S = 2.5
DOWN_S = 1.0
RECOVERY_BOUND_S = 3.0

# PostgreSQL cut
CUT_S = 10.0
RETRY_FOR_S = 45.0  # how long a client keeps sending one message again on 503
QUESTION = "Welke oefeningen helpen tegen rugpijn?"
BRON = "Bron:"

# RabbitMQ cut
MIRROR_WAIT_S = 60.0
WORDS = ["alfa", "bravo", "charlie", "delta", "echo"]


def test_lock_store_recovers_after_a_redis_restart(tmp_path):
    """Acquire/release in a loop on five conversations while the Redis server is killed and started
    again: errors only while it is down (and at most one per pooled connection after), locking
    works again within RECOVERY_BOUND_S of the restart."""
    server = RedisServer(tmp_path)
    server.start()
    prefix = unique_name("faulttest")
    store = AtomicRedisLockStore(host="127.0.0.1", port=server.port, db=0, key_prefix=prefix, socket_timeout=2.0)
    successes: List[float] = []
    errors: List[float] = []

    async def load() -> None:
        start = time.monotonic()
        number = 0
        while time.monotonic() - start < LOAD_S:
            number += 1
            try:
                async with store.lock(f"gesprek{number % 5}", lock_lifetime=5, wait_time_in_seconds=0.01):
                    await asyncio.sleep(0.002)
                successes.append(time.monotonic())
            except LockError:
                errors.append(time.monotonic())
            await asyncio.sleep(0.01)

    def restart() -> None:
        time.sleep(KILL_AT_S)
        killed[0] = time.monotonic()
        server.kill()
        time.sleep(DOWN_S)
        server.start()
        restarted[0] = time.monotonic()

    killed, restarted = [0.0], [0.0]
    try:
        restarter = threading.Thread(target=restart)
        restarter.start()
        asyncio.run(load())
        restarter.join()
    finally:
        server.kill()
    during = [t for t in errors if killed[0] <= t <= restarted[0]]
    after = [t for t in errors if t > restarted[0]]
    recovered = min(t for t in successes if t > restarted[0]) - restarted[0]
    print(f"\nRedis restart: {len(successes)} lock cycles, {len(errors)} errors ({len(during)} while down "
          f"{restarted[0] - killed[0]:.1f} s, {len(after)} after the restart); locking again {recovered:.2f} s after it")
    assert not [t for t in errors if t < killed[0]]
    assert len(after) <= 2  # a stale pooled connection fails once, then reconnects
    assert recovered < RECOVERY_BOUND_S
    assert [t for t in successes if t > restarted[0] + RECOVERY_BOUND_S]  # and keeps working


@dataclass
class Cluster:
    stack: Stack
    database: str
    pg_proxy: TcpProxy
    rabbit_proxy: TcpProxy
    recorder: WebhookRecorder
    endpoints: Path
    env: Dict[str, str]
    consumer: Optional[subprocess.Popen] = None
    consumer_starts: int = field(default=0)

    def start_consumer(self) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        log = open(LOGS / "staff-consumer.log", "a")
        self.consumer = subprocess.Popen(
            [sys.executable, "-m", "bot.staff.consumer", "--endpoints", str(self.endpoints)],
            cwd=ROOT, env=server_environment({**self.env, "RASA_ENDPOINTS": str(self.endpoints)}),
            stdout=log, stderr=subprocess.STDOUT,
        )
        self.consumer_starts += 1

    def stop_consumer(self) -> None:
        if self.consumer is not None and self.consumer.poll() is None:
            self.consumer.terminate()
            try:
                self.consumer.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.consumer.kill()
                self.consumer.wait()

    def query(self, statement: str, *params: object) -> List[tuple]:
        """On PostgreSQL itself (not through the proxy)."""
        connection = psycopg2.connect(dbname=self.database, **POSTGRES)
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
                return cursor.fetchall()
        finally:
            connection.close()


async def _delete_broker_names(queue: str, exchange: str) -> None:
    connection = await aio_pika.connect(host="127.0.0.1", port=RABBITMQ_PORT, login="guest", password="guest")
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("faults")
    queue, exchange = unique_name("faulttestqueue"), unique_name("faulttestexchange")
    recorder = WebhookRecorder()
    pg_proxy, rabbit_proxy = TcpProxy(POSTGRES["port"]), TcpProxy(RABBITMQ_PORT)
    env = {"STAFF_NOTIFIER": "slack", "SLACK_WEBHOOK_URL": recorder.url, "HANDOFF_TOTAL": "100000"}
    sections = {
        "tracker_store": tracker_store_section("", pg_proxy.port),
        "event_broker": {"type": "pika", "url": "127.0.0.1", "port": rabbit_proxy.port, "username": "guest",
                         "password": "guest", "queues": [queue], "exchange_name": exchange},
    }
    try:
        for database in postgres_database("faulttest"):
            sections["tracker_store"]["db"] = database
            LOGS.mkdir(parents=True, exist_ok=True)
            with running_stack(work_dir=work, log_dir=LOGS, env=env, endpoints_sections=sections) as stack:
                cluster = Cluster(stack, database, pg_proxy, rabbit_proxy, recorder, work / "endpoints.yml", env)
                cluster.start_consumer()
                try:
                    yield cluster
                finally:
                    cluster.stop_consumer()
    finally:
        pg_proxy.close()
        rabbit_proxy.close()
        recorder.close()
        asyncio.run(_delete_broker_names(queue, exchange))


@dataclass
class Sent:
    sender: str
    status: int = 0  # the last answer: 200 once a reply came
    refusals: int = 0  # 503s before it
    first_sent: float = 0.0


def send_with_retries(url: str, sender: str, text: str) -> Sent:
    """A client that sends the message again while the server answers 503 (after Retry-After)."""
    sent = Sent(sender, first_sent=time.monotonic())
    deadline = sent.first_sent + RETRY_FOR_S
    while time.monotonic() < deadline:
        response = requests.post(url, json={"sender": sender, "message": text}, timeout=60)
        sent.status = response.status_code
        if response.status_code != 503:
            assert response.status_code == 200 and response.json(), response.text
            return sent
        sent.refusals += 1
        time.sleep(float(response.headers.get("Retry-After", 1)))
    return sent


def test_postgres_unreachable_for_10_s_loses_no_message(cluster):
    """Visitors keep writing while the tracker store's database is cut off for CUT_S seconds."""
    results: List[Sent] = []
    stop = threading.Event()

    def visitors() -> None:
        while not stop.is_set():
            results.append(send_with_retries(cluster.stack.rest_url, unique_name("pgfault"), QUESTION))

    client = threading.Thread(target=visitors)
    client.start()
    time.sleep(3)
    cut_at = time.monotonic()
    cluster.pg_proxy.cut()
    time.sleep(CUT_S)
    cluster.pg_proxy.restore()
    restored_at = time.monotonic()
    time.sleep(5)
    stop.set()
    client.join(timeout=RETRY_FOR_S + 60)
    stored = dict(cluster.query(
        "SELECT sender_id, COUNT(*) FROM events WHERE type_name = 'user' AND sender_id LIKE 'pgfault%%' GROUP BY sender_id"
    ))
    replied = [sent for sent in results if sent.status == 200]
    refused = sum(sent.refusals for sent in results)
    print(f"\nPostgreSQL cut {restored_at - cut_at:.1f} s: {len(results)} messages, {len(replied)} replied, "
          f"{refused} answers 503 (retried), stored: {Counter(stored.values())}")
    assert refused > 0  # the cut was felt
    assert len(replied) == len(results)  # every message got its reply in the end
    assert {sent.sender: stored.get(sent.sender, 0) for sent in replied} == {sent.sender: 1 for sent in replied}
    assert set(stored) == {sent.sender for sent in replied}  # nothing stored that got no reply


def test_postgres_unreachable_a_widget_visitor_is_told_to_send_again(cluster):
    """bot/channels/store_unavailable.py through the real socket.io channel: while the database is
    cut off the widget gets the request to send the message again (not silence); once it is back,
    the same message is answered and stored once."""
    visitor = Visitor(cluster.stack.url).connect()
    try:
        conversation = visitor.request_session()["session_id"]
        cluster.pg_proxy.cut()
        try:
            during = visitor.ask(QUESTION, conversation)
        finally:
            cluster.pg_proxy.restore()
        assert during == [reply("store_unavailable")]
        for _ in range(3):  # the first message after the cut may still meet a dropped connection
            after = visitor.ask(QUESTION, conversation)
            if after != during:
                break
            time.sleep(1)
        assert any(BRON in text for text in after), after
        stored = cluster.query("SELECT COUNT(*) FROM events WHERE type_name = 'user' AND sender_id = %s", conversation)
        assert stored == [(1,)]
    finally:
        visitor.disconnect()


def wait_for(condition, timeout: float, poll_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return False


def say(cluster: Cluster, sender: str, text: str) -> None:
    sent = send_with_retries(cluster.stack.rest_url, sender, text)
    assert sent.status == 200


def mirrored(cluster: Cluster, sender: str) -> Counter:
    return Counter(text for text in cluster.recorder.received if text.startswith(f"[{sender}] bezoeker:"))


def test_rabbitmq_down_then_consumer_down_mirrored_messages_arrive_once(cluster):
    sender = unique_name("rabbitfault")
    say(cluster, sender, "ik wil een medewerker spreken")
    assert wait_for(lambda: any(sender in text and text.startswith("Overdracht") for text in cluster.recorder.received),
                    MIRROR_WAIT_S), "the hand-off notice did not arrive"
    assert wait_for(lambda: cluster.query("SELECT 1 FROM staff_open_handoffs WHERE conversation_id = %s", sender),
                    MIRROR_WAIT_S), "the consumer did not see the hand-off open"

    # RabbitMQ unreachable while the visitor writes (the Rasa server still answers)
    cluster.rabbit_proxy.cut()
    during_cut = [f"tijdens de storing {word}" for word in WORDS]
    for text in during_cut:
        say(cluster, sender, text)
    time.sleep(3)
    cluster.rabbit_proxy.restore()
    restored_at = time.monotonic()
    expected = {f"[{sender}] bezoeker: {text}" for text in during_cut}
    arrived = wait_for(lambda: expected <= set(mirrored(cluster, sender)), MIRROR_WAIT_S)
    print(f"\nRabbitMQ cut: {len(expected & set(mirrored(cluster, sender)))}/{len(expected)} mirrored messages "
          f"arrived {time.monotonic() - restored_at:.1f} s after it was back")
    assert arrived, f"missing after RabbitMQ came back: {sorted(expected - set(mirrored(cluster, sender)))}"

    # the consumer down: the events wait in the durable queue
    cluster.stop_consumer()
    while_down = [f"consument weg {word}" for word in WORDS[:3]]
    for text in while_down:
        say(cluster, sender, text)
    time.sleep(2)
    assert not {f"[{sender}] bezoeker: {text}" for text in while_down} & set(mirrored(cluster, sender))
    cluster.start_consumer()
    started_at = time.monotonic()
    expected |= {f"[{sender}] bezoeker: {text}" for text in while_down}
    assert wait_for(lambda: expected <= set(mirrored(cluster, sender)), MIRROR_WAIT_S)
    print(f"Consumer down: {len(while_down)} mirrored messages arrived {time.monotonic() - started_at:.1f} s after "
          f"its restart")
    time.sleep(3)  # any duplicate would arrive by now
    counts = mirrored(cluster, sender)
    assert set(counts) == expected and set(counts.values()) == {1}, counts  # each once, nothing else
    # the hand-off notice: queued by the action, delivered by the action server or the consumer, once
    assert sum(1 for text in cluster.recorder.received if text.startswith("Overdracht") and sender in text) == 1
    # mirrored in the order the visitor wrote
    order = [text for text in cluster.recorder.received if text in expected]
    assert order == [f"[{sender}] bezoeker: {text}" for text in during_cut + while_down]


class BrokenStore(InMemoryTrackerStore):
    """A tracker store whose every read and save fails with `error`."""

    def __init__(self, error: Exception) -> None:
        super().__init__(Domain.empty())
        self.error = error

    async def retrieve(self, sender_id: str):
        raise self.error

    async def save(self, tracker) -> None:
        raise self.error


def test_fail_safe_store_lets_an_unreachable_database_through_and_handles_the_rest_as_rasa_does():
    """bot/rasa_patches.py: TrackerStoreUnavailable fails the turn; any other error falls back to
    Rasa's in-memory store, as before."""
    rasa_patches.apply()
    tracker = DialogueStateTracker.from_events("gesprek", [UserUttered("hallo")])
    unavailable = FailSafeTrackerStore(BrokenStore(TrackerStoreUnavailable("OperationalError")))
    with pytest.raises(TrackerStoreUnavailable):
        asyncio.run(unavailable.save(tracker))
    with pytest.raises(TrackerStoreUnavailable):
        asyncio.run(unavailable.retrieve("gesprek"))
    other = FailSafeTrackerStore(BrokenStore(ValueError("iets anders")))
    asyncio.run(other.save(tracker))
    assert asyncio.run(other.fallback_tracker_store.retrieve("gesprek")) is not None
    assert asyncio.run(other.retrieve("gesprek")) is None


async def test_a_turn_that_could_not_be_stored_asks_the_sender_to_send_again():
    """bot/channels/store_unavailable.py (the widget's and the staff room's `on_new_message`): the
    sender gets the request on the message's own output channel; any other error is raised as before."""

    async def unreachable(message: UserMessage) -> None:
        raise TrackerStoreUnavailable("OperationalError")

    async def broken(message: UserMessage) -> None:
        raise ValueError("iets anders")

    async def answered(message: UserMessage) -> str:
        return "verwerkt"

    output = CollectingOutputChannel()
    assert await told_when_unavailable(unreachable)(UserMessage("hallo", output, "bezoeker")) is None
    assert [(sent["recipient_id"], sent["text"]) for sent in output.messages] == [("bezoeker", reply("store_unavailable"))]
    with pytest.raises(ValueError):
        await told_when_unavailable(broken)(UserMessage("hallo", CollectingOutputChannel(), "bezoeker"))
    assert await told_when_unavailable(answered)(UserMessage("hallo", CollectingOutputChannel(), "bezoeker")) == "verwerkt"
