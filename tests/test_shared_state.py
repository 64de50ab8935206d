"""Nothing of the staff state lives in one process's memory when the endpoints file selects shared
backends (bot/stores/backends.py): the outbox in PostgreSQL, the rate limits and the Matrix
transactions seen in Redis; and the embedded backends when it does not (`make run`).

Real servers on loopback: PostgreSQL (a database of this module's own, dropped afterwards), Redis
(a key prefix of each test's own, deleted afterwards). No Rasa server; the tracker store is built
in the test."""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Iterator, List

import aiohttp
import pytest
import redis
import sqlalchemy as sa
import yaml
from rasa.core.channels.channel import UserMessage
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import ACTION_SESSION_START_NAME
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Sanic

from bot.channels.matrix import MatrixInput, RasaApi, SeenInMemory, SeenInRedis, seen_transactions_for
from bot.contract import ERASURE_CONFIRMED_SLOT
from bot.privacy.retention import erase, purge
from bot.stack import free_port
from bot.staff.consumer import SharedOpenHandOffs, handle_event
from bot.staff.notifiers import MatrixSettings, SlackNotifier
from bot.staff.outbox import Outbox, SharedOutbox, outbox_for
from bot.staff.rate_limit import NoticeLimiter, RedisNoticeLimiter, limiter_for
from bot.stores.backends import SharedRedis, shared_redis, shared_sql_url
from bot.stores import tracker_store
from bot.stores.tracker_store import PING_AFTER_IDLE_S, PrivateSQLTrackerStore, TrackerStoreUnavailable
from bot.stores.tracker_store import ping as tracker_store_ping
from fault_tools import (
    TcpProxy, WebhookRecorder, delete_redis_keys, lock_store_section, postgres_database, postgres_url,
    tracker_store_section, unique_name,
)
from test_tracker_store import DOMAIN  # the tracker store tests' domain (its slots)

NOTICES = 120
DELIVERERS = 3


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    yield from postgres_database("sharedstatetest")


@pytest.fixture
def prefix() -> Iterator[str]:
    name = unique_name("sharedstatetest")
    yield name
    delete_redis_keys(name)


def shared(prefix: str) -> SharedRedis:
    """A client of its own, as another process would have."""
    return SharedRedis(redis.Redis(host="127.0.0.1", port=6379, db=0), prefix)


def write_endpoints(path: Path, **sections: object) -> Path:
    path.write_text(yaml.safe_dump(sections), encoding="utf-8")
    return path


@pytest.fixture
def recorder() -> Iterator[WebhookRecorder]:
    server = WebhookRecorder()
    yield server
    server.close()


def test_endpoints_select_the_backends(tmp_path, database, prefix, monkeypatch):
    monkeypatch.setenv("STAFF_OUTBOX", str(tmp_path / "outbox.db"))
    embedded = write_endpoints(tmp_path / "embedded.yml", tracker_store={
        "type": "bot.stores.tracker_store.PrivateSQLTrackerStore", "dialect": "sqlite", "db": "var/x.db"})
    cluster = write_endpoints(tmp_path / "cluster.yml", tracker_store=tracker_store_section(database),
                              lock_store=lock_store_section(prefix))
    assert isinstance(outbox_for(embedded), Outbox)
    assert isinstance(limiter_for(embedded), NoticeLimiter)
    assert isinstance(seen_transactions_for(embedded), SeenInMemory)
    shared_outbox = outbox_for(cluster)
    assert isinstance(shared_outbox, SharedOutbox)
    shared_outbox.close()
    assert isinstance(limiter_for(cluster), RedisNoticeLimiter)
    assert isinstance(seen_transactions_for(cluster), SeenInRedis)
    config = yaml.safe_load(cluster.read_text())
    assert shared_sql_url(config).database == database
    assert shared_redis(config).key("x") == f"{prefix}:x"


async def test_concurrent_deliverers_deliver_each_notice_exactly_once(database, recorder):
    """Three outboxes (each its own connection pool, as three processes) deliver one table at once."""
    url = postgres_url(database)
    outboxes = [SharedOutbox(url) for _ in range(DELIVERERS)]
    try:
        texts = [f"melding {number}" for number in range(NOTICES)]
        for number, text in enumerate(texts):
            outboxes[number % DELIVERERS].enqueue(f"gesprek-{number}", text)
        notifier = SlackNotifier(webhook_url=recorder.url)
        started = time.monotonic()
        counts = await asyncio.gather(*(drain(outbox, notifier) for outbox in outboxes))
        elapsed = time.monotonic() - started
    finally:
        for outbox in outboxes:
            outbox.close()
    received = Counter(recorder.received)
    print(f"\n{NOTICES} notices, {DELIVERERS} deliverers: delivered {counts} in {elapsed:.1f} s")
    assert sorted(received) == sorted(texts) and set(received.values()) == {1}  # each once
    assert sum(counts) == NOTICES
    assert sum(1 for count in counts if count) >= 2  # the deliverers really shared the work


async def drain(outbox: SharedOutbox, notifier: SlackNotifier) -> int:
    delivered = 0
    while outbox.pending():
        delivered += await outbox.deliver_due(notifier)
        await asyncio.sleep(0)
    return delivered


def test_a_notice_key_is_queued_once(database):
    outbox = SharedOutbox(postgres_url(database))
    try:
        key = unique_name("event")
        first = outbox.enqueue("gesprek", "gespiegeld", key=key)
        assert first > 0 and outbox.enqueue("gesprek", "gespiegeld", key=key) == 0
        assert outbox.delete(["gesprek"]) >= 1 and outbox.pending() == 0
    finally:
        outbox.close()


def test_a_claimed_notice_is_not_delivered_by_another_until_its_claim_lapses(database):
    first, second = SharedOutbox(postgres_url(database)), SharedOutbox(postgres_url(database))
    try:
        first.delete(["claim"])
        first.enqueue("claim", "één keer", now=1000.0)
        claimed = first.claim(now=1000.0)
        assert claimed is not None and claimed.text == "één keer"
        assert second.claim(now=1001.0) is None  # held by the first deliverer
        again = second.claim(now=1000.0 + 61)  # the first died holding it: the second takes over
        assert again is not None and again.id == claimed.id
        second.delivered(again, 1062.0)
        assert first.claim(now=5000.0) is None
    finally:
        first.delete(["claim"])
        first.close()
        second.close()


def test_rate_limits_are_shared_between_two_limiters(prefix):
    """The in-memory test's sequence (tests/test_staff_outbox.py), alternating two limiters."""
    one = RedisNoticeLimiter(shared(prefix), per_conversation=2, total=3, window_s=60)
    two = RedisNoticeLimiter(shared(prefix), per_conversation=2, total=3, window_s=60)
    start = time.time()
    assert [one.allow("a", now=start), two.allow("a", now=start + 1), one.allow("a", now=start + 2)] == [True, True, False]
    assert two.allow("b", now=start + 3) and not one.allow("c", now=start + 4)  # total of 3 reached, counted by both
    assert two.total_reached(now=start + 4) and one.total_reached(now=start + 4)
    assert one.summary_due() and not two.summary_due()  # one summary per window, across both
    assert two.allow("c", now=start + 61)  # the window moved on


def test_concurrent_requests_never_pass_the_limit(prefix):
    """40 notices of one conversation at once from 8 threads, each with its own limiter: 3 pass."""
    limiters = [RedisNoticeLimiter(shared(prefix), per_conversation=3, total=100, window_s=60) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        allowed = list(pool.map(lambda number: limiters[number % 8].allow("druk"), range(40)))
    assert allowed.count(True) == 3


def test_in_memory_limits_are_unchanged():
    limiter = NoticeLimiter(per_conversation=2, total=3, window_s=60)
    assert [limiter.allow("a", now=0), limiter.allow("a", now=1), limiter.allow("a", now=2)] == [True, True, False]
    assert limiter.allow("b", now=3) and not limiter.allow("c", now=4)
    assert limiter.summary_due(now=4) and not limiter.summary_due(now=5) and limiter.allow("c", now=61)


def test_a_retried_transaction_is_handled_once_by_either_channel(prefix):
    one, two = SeenInRedis(shared(prefix)), SeenInRedis(shared(prefix))
    assert one.first_time("txn-1") and not two.first_time("txn-1") and not one.first_time("txn-1")
    assert two.first_time("txn-2")
    ttl = shared(prefix).client.ttl(f"{prefix}:matrix:txn:txn-1")
    assert 0 < ttl <= 24 * 3600
    memory = SeenInMemory(size=2)
    assert memory.first_time("a") and not memory.first_time("a") and memory.first_time("b") and memory.first_time("c")
    assert memory.first_time("a")  # only the last `size` are remembered in memory


def test_consumer_mirrors_an_open_hand_off_once_from_the_shared_state(database):
    outbox = SharedOutbox(postgres_url(database))
    other_consumer = SharedOpenHandOffs(SharedOutbox(postgres_url(database)))
    conversation = unique_name("bezoeker")
    try:
        opened = {"sender_id": conversation, "event": "slot", "name": "handoff_active", "value": True}
        message = {"sender_id": conversation, "event": "user", "text": "nog een vraag", "timestamp": 1.5}
        assert not handle_event({**message, "timestamp": 1.0}, outbox, SharedOpenHandOffs(outbox))
        assert not handle_event(opened, outbox, SharedOpenHandOffs(outbox))
        assert conversation in other_consumer  # a restarted or second consumer knows it is open
        assert handle_event(message, outbox, other_consumer)
        assert not handle_event(message, outbox, SharedOpenHandOffs(outbox))  # redelivered: queued once
        handle_event({**opened, "value": False}, outbox, other_consumer)
        assert not handle_event({**message, "timestamp": 2.0}, outbox, SharedOpenHandOffs(outbox))
        assert outbox.delete([conversation]) == 1
    finally:
        outbox.close()
        other_consumer.engine.dispose()


def test_on_postgresql_an_erasure_also_deletes_the_shared_notices_and_an_outage_raises(database):
    """bot/stores/tracker_store.py on PostgreSQL (through a TCP proxy): the erasure takes the
    conversation's staff notices in the same transaction; when the database cannot be reached,
    reading and saving raise TrackerStoreUnavailable (the REST channel answers 503), and work again
    once it is back."""
    proxy = TcpProxy(5432)
    section = tracker_store_section(database, proxy.port)
    store = PrivateSQLTrackerStore(DOMAIN, dialect="postgresql", host=section["url"], port=section["port"],
                                   db=database, username=section["username"], password="")
    outbox = SharedOutbox(postgres_url(database))
    visitor, other = unique_name("wis"), unique_name("blijf")
    try:
        for sender in (visitor, other):
            asyncio.run(store.save(DialogueStateTracker.from_events(sender, [UserUttered("hallo")], slots=DOMAIN.slots)))
            outbox.enqueue(sender, "melding")
        erased = DialogueStateTracker.from_events(
            visitor, [UserUttered("hallo"), SlotSet(ERASURE_CONFIRMED_SLOT, True)], slots=DOMAIN.slots)
        asyncio.run(store.save(erased))
        assert asyncio.run(store.retrieve(visitor)) is None and asyncio.run(store.retrieve(other)) is not None
        assert outbox.delete([visitor]) == 0 and outbox.delete([other]) == 1

        proxy.cut()
        later = DialogueStateTracker.from_events(other, [UserUttered("hallo"), UserUttered("nog iets")], slots=DOMAIN.slots)
        with pytest.raises(TrackerStoreUnavailable):
            asyncio.run(store.retrieve(other))
        with pytest.raises(TrackerStoreUnavailable):
            asyncio.run(store.save(later))
        proxy.restore()
        asyncio.run(store.save(later))  # the pool's dead connections are replaced (pre-ping)
        assert [event.text for event in asyncio.run(store.retrieve(other)).events if isinstance(event, UserUttered)] == [
            "hallo", "nog iets"]
    finally:
        outbox.close()
        store.engine.dispose()
        proxy.close()


def test_a_connection_the_database_dropped_while_idle_is_replaced_and_a_busy_one_is_not_pinged(database, monkeypatch):
    """No `pool_pre_ping` round trip per checkout: a connection back in the pool within
    PING_AFTER_IDLE_S is used as it is; one idle longer is pinged, and replaced when the database
    closed it (as a restart does), so the read after it succeeds."""
    pings: List[object] = []
    monkeypatch.setattr(tracker_store, "ping", lambda connection: (pings.append(connection), tracker_store_ping(connection)))
    store = PrivateSQLTrackerStore(DOMAIN, dialect="postgresql", host="127.0.0.1", port=5432, db=database,
                                   username="postgres", password="")
    admin = sa.create_engine(postgres_url(database))
    sender = unique_name("stil")
    try:
        assert not store.engine.pool._pre_ping
        asyncio.run(store.save(DialogueStateTracker.from_events(sender, [UserUttered("hallo")], slots=DOMAIN.slots)))
        for _ in range(3):
            assert asyncio.run(store.retrieve(sender)) is not None
        assert pings == []
        with admin.connect() as connection:
            closed = connection.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
            ), {"db": database}).fetchall()
        assert closed  # the store's pooled connection among them
        time.sleep(PING_AFTER_IDLE_S + 0.2)
        tracker = asyncio.run(store.retrieve(sender))
        assert [event.text for event in tracker.events if isinstance(event, UserUttered)] == ["hallo"]
        assert len(pings) == 1  # the dropped connection; its replacement is new and not pinged
    finally:
        store.engine.dispose()
        admin.dispose()


def test_retention_purges_and_erases_the_shared_notices(database):
    """bot/privacy/retention.py on a PostgreSQL tracker store: the shared outbox's old notices go with
    the purge (delivered or not), a conversation's with its erasure."""
    config = tracker_store_section(database)
    outbox = SharedOutbox(postgres_url(database))
    old, recent = unique_name("oud"), unique_name("recent")
    now = time.time()
    try:
        outbox.delete(created_before=now + 1)  # this module's earlier notices
        outbox.enqueue(old, "oude melding", now=now - 31 * 86400)
        outbox.enqueue(recent, "recente melding", now=now)
        assert purge(config, timedelta(days=30), None, now=now, dry_run=True).notices == 1
        assert purge(config, timedelta(days=30), None, now=now).notices == 1
        assert outbox.pending() == 1
        assert erase(config, recent, None).notices == 1 and outbox.pending() == 0
    finally:
        outbox.close()


async def test_a_homeserver_retry_at_another_replica_is_handled_once(prefix, monkeypatch):
    """Two Matrix channels (two replicas' Sanic servers) on one Redis: the same transaction sent to
    both is handled by one; a new transaction is handled."""
    monkeypatch.setattr(Sanic, "test_mode", True)  # two Sanic apps in one process
    settings = MatrixSettings("http://127.0.0.1:9", "as", "hs", "@bot:localhost", "!staff:localhost")
    handled: List[str] = []

    async def on_new_message(message: UserMessage) -> None:
        handled.append(message.text)

    servers, urls = [], []
    for _ in range(2):
        channel = MatrixInput(settings, RasaApi("http://127.0.0.1:9"), SeenInRedis(shared(prefix)))
        app = Sanic(unique_name("matrixreplica"))
        app.blueprint(channel.blueprint(on_new_message), url_prefix="/webhooks/matrix")
        port = free_port()
        server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True)
        await server.startup()
        servers.append(server)
        urls.append(f"http://127.0.0.1:{port}/webhooks/matrix/_matrix/app/v1/transactions")
    event = {"type": "m.room.message", "room_id": settings.staff_room, "sender": "@medewerker:localhost",
             "event_id": "$1", "content": {"msgtype": "m.text", "body": "Welke oefeningen helpen?"}}
    try:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer hs"}) as session:
            for url, txn_id in ((urls[0], "t1"), (urls[1], "t1"), (urls[1], "t2")):
                async with session.put(f"{url}/{txn_id}", json={"events": [event]}) as response:
                    assert response.status == 200
        for _ in range(50):
            if len(handled) >= 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # a duplicate would be handled by now
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
    assert handled == ["Welke oefeningen helpen?"] * 2  # t1 once (either replica), t2 once


def test_while_redis_fails_notices_are_let_through(prefix):
    """A notice reaching staff matters more than the flood limit: no Redis, no limit (logged)."""
    unreachable = SharedRedis(redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1), prefix)
    limiter = RedisNoticeLimiter(unreachable, per_conversation=1, total=1, window_s=60)
    assert limiter.allow("a") and limiter.allow("a")


def test_one_conversations_notices_are_delivered_in_order_by_any_deliverer(database):
    first, second = SharedOutbox(postgres_url(database)), SharedOutbox(postgres_url(database))
    conversation, other = unique_name("volgorde"), unique_name("ander")
    try:
        first.delete(created_before=time.time() + 1)
        for number in range(2):
            first.enqueue(conversation, f"bericht {number}", now=1000.0)
        first.enqueue(other, "ander bericht", now=1000.0)
        claimed = first.claim(now=1000.0)
        assert claimed.text == "bericht 0"
        taken = second.claim(now=1000.0)  # not "bericht 1" while "bericht 0" is on its way
        assert taken is not None and taken.text == "ander bericht" and second.claim(now=1000.0) is None
        first.failed(claimed, 1000.0)  # the first post failed: the conversation waits for its retry
        assert second.claim(now=1000.5) is None
        retried = second.claim(now=1002.0)
        assert retried.id == claimed.id
        second.delivered(retried, 1002.0)
        assert second.claim(now=1002.0).text == "bericht 1"
    finally:
        first.delete([conversation, other])
        first.close()
        second.close()


def test_on_postgresql_the_latest_session_is_read_as_rasa_reads_it_with_its_start_computed_once(database):
    """bot/stores/tracker_store.py `_event_query`: the rows and order of Rasa's query (events from
    the latest `session_started` on; all of them for the full tracker), but PostgreSQL computes the
    session's start once (an InitPlan), not once per event row as for Rasa's join."""
    section = tracker_store_section(database, 5432)
    store = PrivateSQLTrackerStore(DOMAIN, dialect="postgresql", host=section["url"], port=section["port"],
                                   db=database, username=section["username"], password="")
    sender = unique_name("sessies")
    first = [ActionExecuted(ACTION_SESSION_START_NAME, timestamp=1.0), SessionStarted(timestamp=1.0),
             UserUttered("hallo", timestamp=2.0), BotUttered("Hoi!", timestamp=3.0)]
    second = [ActionExecuted(ACTION_SESSION_START_NAME, timestamp=10.0), SessionStarted(timestamp=10.0),
              UserUttered("nog een vraag", timestamp=11.0), BotUttered("Graag.", timestamp=12.0)]
    try:
        asyncio.run(store.save(DialogueStateTracker.from_events(sender, first, slots=DOMAIN.slots)))
        asyncio.run(store.save(DialogueStateTracker.from_events(sender, first + second, slots=DOMAIN.slots)))
        with store.session_scope() as session:
            for everything in (False, True):
                ours = [row.id for row in store._event_query(session, sender, everything).all()]
                rasas = [row.id for row in SQLTrackerStore._event_query(store, session, sender, everything).all()]
                assert ours == rasas and ours == sorted(ours)
                assert len(ours) == (8 if everything else 4)
            query = store._event_query(session, sender, False).statement.compile(
                dialect=store.engine.dialect, compile_kwargs={"literal_binds": True})
            plan = [line for (line,) in session.execute(sa.text(f"EXPLAIN ANALYZE {query}"))]
        assert any("InitPlan" in line for line in plan), plan
        assert not any("loops=" in line and "Aggregate" in line and "loops=1)" not in line for line in plan), plan
        assert [e.text for e in asyncio.run(store.retrieve(sender)).events if isinstance(e, UserUttered)] == ["nog een vraag"]
        full = asyncio.run(store.retrieve_full_tracker(sender))
        assert [e.text for e in full.events if isinstance(e, UserUttered)] == ["hallo", "nog een vraag"]
    finally:
        store.engine.dispose()
