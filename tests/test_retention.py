"""Retention and erasure against real stores: trackers written by Rasa's own SQLTrackerStore (a
SQLite file, and PostgreSQL in a database of its own, dropped afterwards) and RedisTrackerStore
(a key prefix of its own, deleted afterwards), plus a real staff outbox file."""
from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import redis
import sqlalchemy as sa
from rasa.core.tracker_store import RedisTrackerStore, SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, Event, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy.pool import NullPool

from bot import paths
from bot.privacy import retention
from bot.privacy.retention import (
    ConversationStore,
    RedisConversationStore,
    Removed,
    SQLConversationStore,
    erase,
    purge,
)
from bot.staff.outbox import Notice, Outbox

DAY = 86400.0
RETENTION = timedelta(days=30)
TEXT = "mijn rug doet pijn sinds gisteren"  # must never reach a log line
POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379

DOMAIN = Domain.from_yaml(
    """
version: '3.1'
intents: [klacht]
slots:
  klacht:
    type: text
    mappings: [{type: custom}]
"""
)


def conversation(sender_id: str, *days_ago: float, now: float) -> DialogueStateTracker:
    """A tracker with one user message, bot reply and slot per `days_ago` (oldest first)."""
    events: List[Event] = []
    for age in days_ago:
        at = now - age * DAY
        events += [
            UserUttered(TEXT, intent={"name": "klacht", "confidence": 1.0}, timestamp=at),
            BotUttered("Wat vervelend. Blijf in beweging.", timestamp=at + 1),
            SlotSet("klacht", "rugpijn", timestamp=at + 2),
        ]
    return DialogueStateTracker.from_events(sender_id, events, slots=DOMAIN.slots)


# Three conversations: only the first has been idle longer than the retention period.
OLD, RECENT, REVIVED = "oud-40-dagen", "recent-10-dagen", "oud-begin-recent-einde"
AGES: Dict[str, tuple] = {OLD: (45, 40), RECENT: (10,), REVIVED: (60, 1)}


@dataclass
class SQLBackend:
    config: Dict[str, Any]
    store: SQLTrackerStore  # Rasa's own store, for writing and reading trackers

    def rows(self, sender_id: Optional[str] = None) -> int:
        query = "SELECT COUNT(*) FROM events" + (" WHERE sender_id = :sender_id" if sender_id else "")
        with self.store.engine.connect() as connection:
            return int(connection.execute(sa.text(query), {"sender_id": sender_id}).scalar())

    def save(self, tracker: DialogueStateTracker) -> None:
        asyncio.run(self.store.save(tracker))

    def retrieve(self, sender_id: str) -> Optional[DialogueStateTracker]:
        return asyncio.run(self.store.retrieve(sender_id))


def drop_database(name: str) -> None:
    engine = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path: Path) -> Iterator[SQLBackend]:
    if request.param == "sqlite":
        db = tmp_path / "conversations.db"
        store = SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(db))
        try:
            yield SQLBackend({"type": "SQL", "dialect": "sqlite", "db": str(db)}, store)
        finally:
            store.engine.dispose()
        return
    name = f"privacy_test_{secrets.token_hex(6)}"
    # Fail fast when PostgreSQL is down (Rasa's store would retry forever)
    probe = sa.create_engine(POSTGRES, poolclass=NullPool, connect_args={"connect_timeout": 5})
    probe.connect().close()
    probe.dispose()
    store: Optional[SQLTrackerStore] = None
    try:
        store = SQLTrackerStore(DOMAIN, dialect="postgresql", host="127.0.0.1", port=5432, db=name,
                                username="postgres", password="", login_db="postgres")
        yield SQLBackend({"type": "SQL", "dialect": "postgresql", "url": "127.0.0.1", "port": 5432, "db": name,
                          "username": "postgres", "password": "", "login_db": "postgres"}, store)
    finally:
        if store is not None:
            store.engine.dispose()
        drop_database(name)


@pytest.fixture
def now() -> float:
    return time.time()


@pytest.fixture
def filled(backend: SQLBackend, now: float) -> SQLBackend:
    for sender_id, ages in AGES.items():
        backend.save(conversation(sender_id, *ages, now=now))
    return backend


@pytest.fixture
def outbox(tmp_path: Path, now: float) -> Path:
    """Six notices: four are past retention (by conversation or by age), two stay."""
    path = tmp_path / "outbox" / "outbox.db"
    box = Outbox(path)
    box.enqueue(OLD, "Verwijzing gesprek oud", now=now - 40 * DAY)  # purged conversation, old
    box.enqueue(OLD, "Herhaalde melding", now=now - 20 * DAY)  # purged conversation, young notice
    box.enqueue("alleen-in-outbox", "Melding zonder gesprek", now=now - 31 * DAY)  # old, undelivered
    old_delivered = box.enqueue(REVIVED, "Eerste melding", now=now - 45 * DAY)  # old, delivered
    box.delivered(Notice(old_delivered, REVIVED, "Eerste melding", 0), now - 45 * DAY)
    box.enqueue(REVIVED, "Tweede melding", now=now - 1 * DAY)  # stays
    box.enqueue(RECENT, "Melding recent", now=now - 10 * DAY)  # stays
    return path


def notices(path: Path) -> List[tuple]:
    with closing(sqlite3.connect(str(path))) as db:
        return db.execute("SELECT conversation_id, text FROM notices ORDER BY id").fetchall()


# --- SQL tracker stores (SQLite and PostgreSQL) ---------------------------------------------------


def test_expired_is_by_last_event(filled: SQLBackend, now: float) -> None:
    with ConversationStore.from_endpoint_config(filled.config) as store:
        assert isinstance(store, SQLConversationStore)
        assert store.expired(now - RETENTION.total_seconds()) == [OLD]
        assert sorted(store.expired(now)) == sorted(AGES)  # everything is older than now
        assert store.expired(now - 61 * DAY) == []
        assert store.exists(OLD) and store.exists(REVIVED) and not store.exists("nooit-gezien")


def test_dry_run_counts_without_deleting(filled: SQLBackend, outbox: Path, now: float) -> None:
    before, notices_before = filled.rows(), notices(outbox)
    removed = purge(filled.config, RETENTION, outbox, now=now, dry_run=True)
    assert removed == Removed(conversations=1, events=filled.rows(OLD), notices=4)
    assert filled.rows(OLD) == 6
    assert filled.rows() == before == 6 + 3 + 6
    assert notices(outbox) == notices_before


def test_purge_deletes_exactly_the_expired_conversation(filled: SQLBackend, outbox: Path, now: float,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    revived = filled.retrieve(REVIVED)
    assert revived is not None and len(revived.events) == 6
    with caplog.at_level(logging.DEBUG, logger=retention.__name__):
        removed = purge(filled.config, RETENTION, outbox, now=now)
    assert removed == Removed(conversations=1, events=6, notices=4)
    assert removed.summary() == "1 gesprek, 6 gebeurtenissen, 4 meldingen"
    assert (filled.rows(OLD), filled.rows(RECENT), filled.rows(REVIVED)) == (0, 3, 6)
    assert filled.retrieve(OLD) is None
    after = filled.retrieve(REVIVED)
    assert after is not None and [e.as_dict() for e in after.events] == [e.as_dict() for e in revived.events]
    assert notices(outbox) == [(REVIVED, "Tweede melding"), (RECENT, "Melding recent")]
    # logs name counts and ids, never what was said
    assert OLD in caplog.text and "1 gesprek" in caplog.text
    assert TEXT not in caplog.text and "Melding" not in caplog.text
    # nothing left to purge: zero counts
    assert purge(filled.config, RETENTION, outbox, now=now) == Removed()


def test_purge_follows_the_retention_period(filled: SQLBackend, now: float) -> None:
    removed = purge(filled.config, timedelta(days=5.5), None, now=now)  # fractional days
    assert removed == Removed(conversations=2, events=9)
    assert (filled.rows(OLD), filled.rows(RECENT), filled.rows(REVIVED)) == (0, 0, 6)


def test_purge_in_chunks(backend: SQLBackend, now: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "CHUNK", 2)
    expired = [f"verlopen-{number}" for number in range(5)]
    for sender_id in expired:
        backend.save(conversation(sender_id, 50, 35, now=now))
    backend.save(conversation(RECENT, 3, now=now))
    with ConversationStore.from_endpoint_config(backend.config) as store:
        assert store.expired(now - RETENTION.total_seconds()) == sorted(expired)
        assert store.delete(expired + expired[:2], dry_run=True) == Removed(conversations=5, events=30)
        assert backend.rows() == 33
    assert purge(backend.config, RETENTION, None, now=now) == Removed(conversations=5, events=30)
    assert backend.rows() == backend.rows(RECENT) == 3


def test_erase_removes_every_row_of_one_conversation(filled: SQLBackend, outbox: Path) -> None:
    removed = erase(filled.config, REVIVED, outbox)
    assert removed == Removed(conversations=1, events=6, notices=2)
    assert filled.rows(REVIVED) == 0 and filled.retrieve(REVIVED) is None
    assert (filled.rows(OLD), filled.rows(RECENT)) == (6, 3)
    assert [conversation_id for conversation_id, _ in notices(outbox)] == [OLD, OLD, "alleen-in-outbox", RECENT]
    with ConversationStore.from_endpoint_config(filled.config) as store:
        assert not store.exists(REVIVED)
    # a second erasure finds nothing and does not fail
    assert erase(filled.config, REVIVED, outbox) == Removed()
    assert erase(filled.config, "nooit-gezien", outbox) == Removed()
    # notices of a conversation the tracker store no longer has go too
    assert erase(filled.config, "alleen-in-outbox", outbox) == Removed(notices=1)


def test_a_conversation_erased_can_start_again(filled: SQLBackend, now: float) -> None:
    erase(filled.config, RECENT, None)
    filled.save(conversation(RECENT, 0, now=now))
    tracker = filled.retrieve(RECENT)
    assert tracker is not None and len(tracker.events) == 3 and filled.rows(RECENT) == 3


# --- without anything stored ----------------------------------------------------------------------


def test_a_missing_sqlite_file_or_outbox_is_not_created(tmp_path: Path, now: float) -> None:
    db, box = tmp_path / "nog-niet.db", tmp_path / "geen-outbox.db"
    config = {"type": "SQL", "dialect": "sqlite", "db": str(db)}
    assert purge(config, RETENTION, box, now=now) == Removed()
    assert erase(config, "iemand", box) == Removed()
    assert not db.exists() and not box.exists()


def test_endpoint_configs(backend: SQLBackend) -> None:
    relative = ConversationStore.from_endpoint_config({"type": "SQL", "dialect": "sqlite", "db": "var/c.db"})
    custom = ConversationStore.from_endpoint_config(
        {**backend.config, "type": "bot.privacy.store.RedactingSQLTrackerStore"})
    try:
        assert isinstance(relative, SQLConversationStore)
        assert relative.sqlite_file == paths.ROOT / "var" / "c.db"  # the repository root, not the cwd
        assert isinstance(custom, SQLConversationStore)
        assert custom.url.database == backend.store.engine.url.database
    finally:
        relative.close()
        custom.close()
    postgres = {"dialect": "postgresql", "url": "db.example:6543", "db": "rasa", "username": "rasa", "password": "x"}
    rasa_url = SQLTrackerStore.get_db_url("postgresql", "db.example:6543", None, "rasa", "rasa", "x")
    assert retention.sql_url(postgres).render_as_string(hide_password=False) == str(rasa_url)
    full = "postgresql://u:p@h:1/d"
    assert str(retention.sql_url({"dialect": "postgresql", "url": full, "db": "other"})) == full
    with pytest.raises(ValueError):
        ConversationStore.from_endpoint_config({"db": "x.db"})


# --- Redis tracker store --------------------------------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"privacytest{secrets.token_hex(6)}"
    yield prefix
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_redis_erase_deletes_the_key_and_purge_leaves_it_to_record_exp(
        redis_prefix: str, now: float, caplog: pytest.LogCaptureFixture) -> None:
    store = RedisTrackerStore(DOMAIN, host=REDIS_HOST, port=REDIS_PORT, key_prefix=redis_prefix, record_exp=3600)
    config = {"type": "redis", "url": REDIS_HOST, "port": REDIS_PORT, "db": 0, "key_prefix": redis_prefix,
              "record_exp": 3600}
    try:
        asyncio.run(store.save(conversation(OLD, 40, now=now)))
        asyncio.run(store.save(conversation(RECENT, 1, now=now)))
        key = store.key_prefix + OLD
        assert key == f"{redis_prefix}:tracker:{OLD}" and store.red.exists(key)
        with ConversationStore.from_endpoint_config(config) as ours:
            assert isinstance(ours, RedisConversationStore)
            assert ours.key(OLD) == key and ours.exists(OLD)
            assert ours.expired(now) == []

        with caplog.at_level(logging.WARNING, logger=retention.__name__):
            assert purge(config, RETENTION, None, now=now) == Removed()
        assert "record_exp" not in caplog.text  # 3600 s is within the retention period
        assert store.red.exists(key) and 0 < store.red.ttl(key) <= 3600

        assert erase(config, OLD, None) == Removed(conversations=1, events=3)
        assert not store.red.exists(key)
        assert asyncio.run(store.retrieve(OLD)) is None
        assert asyncio.run(store.retrieve(RECENT)) is not None
        assert erase(config, OLD, None) == Removed()

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=retention.__name__):
            assert purge({**config, "record_exp": None}, RETENTION, None, now=now) == Removed()
        assert "without record_exp" in caplog.text
    finally:
        store.red.close()


def test_redis_key_prefix_as_rasa_has_it() -> None:
    for prefix in (None, "", "bot1", "not-alphanumeric"):
        rasa_store = RedisTrackerStore(DOMAIN, host=REDIS_HOST, port=REDIS_PORT, key_prefix=prefix)
        try:
            assert retention.redis_key_prefix(prefix) == rasa_store.key_prefix
        finally:
            rasa_store.red.close()


# --- settings and counts --------------------------------------------------------------------------


def test_retention_from_env() -> None:
    assert retention.retention_from_env({}) == timedelta(days=30)
    assert retention.retention_from_env({"RETENTION_DAYS": " 0.5 "}) == timedelta(hours=12)
    assert retention.retention_from_env({"RETENTION_DAYS": "90"}) == timedelta(days=90)
    for wrong in ("0", "-3", "dertig", "nan", "inf"):
        with pytest.raises(ValueError, match="RETENTION_DAYS"):
            retention.retention_from_env({"RETENTION_DAYS": wrong})
    assert retention.purge_interval_from_env({}) == 3600.0
    assert retention.purge_interval_from_env({"PURGE_INTERVAL_S": "60"}) == 60.0
    with pytest.raises(ValueError, match="PURGE_INTERVAL_S"):
        retention.purge_interval_from_env({"PURGE_INTERVAL_S": "0"})
    assert retention.outbox_path_from_env({}) == paths.VAR_DIR / "outbox.db"
    assert retention.outbox_path_from_env({"STAFF_OUTBOX": "/tmp/x.db"}) == Path("/tmp/x.db")


def test_removed_adds_up_and_reads_well() -> None:
    total = Removed(1, 6, 0) + Removed(2, 35, 2)
    assert total == Removed(conversations=3, events=41, notices=2)
    assert total.summary() == "3 gesprekken, 41 gebeurtenissen, 2 meldingen"
    assert Removed(1, 1, 1).summary() == "1 gesprek, 1 gebeurtenis, 1 melding"
    assert Removed().summary() == "0 gesprekken, 0 gebeurtenissen, 0 meldingen"
