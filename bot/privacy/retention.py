"""Retention and erasure: conversations are health data and are not kept longer than needed.

What is deleted, and when:

* Tracker store, SQL (Rasa's SQLTrackerStore or a subclass; SQLite, PostgreSQL, ...): every row of
  table `events` of each conversation whose LAST event is older than the retention period
  (RETENTION_DAYS, default 30 days; fractions allowed). A conversation is kept whole while it is in
  use and deleted whole once it has been idle that long. Rasa 3.6 never deletes, so this module
  deletes the rows itself (SQLAlchemy Core, one transaction per store and call). The purge is meant to run
  every PURGE_INTERVAL_S seconds (default 3600) and from the command line.
* Tracker store, Redis: Redis itself deletes a conversation `record_exp` seconds after its last save
  (Rasa renews the TTL on every save, so this too counts from the last event). The purge deletes
  nothing there; it warns when `record_exp` is unset or longer than the retention period.
* Staff outbox (bot/staff/outbox.py; SQLite, or the `staff_notices` table of a PostgreSQL tracker
  store): the notices of purged conversations and every notice created before the cutoff,
  delivered or not.
* Erasure (a visitor's or staff member's request): every event (or the Redis key) and every staff
  notice of one conversation id, at once. Erasing an id that is gone removes nothing and succeeds.

Log lines carry counts and conversation ids, never message text. Imports nothing of Rasa: it runs in
the action server and in the command line as well as next to Rasa.
"""
from __future__ import annotations

import abc
import asyncio
import json
import logging
import math
import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Type

import redis
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import NullPool

from bot import paths
from bot.staff.outbox import OUTBOX_VARIABLE, delete_shared_notices
from bot.stores.backends import redis_client, sql_url  # the tracker store's URL and Redis, as Rasa builds them

logger = logging.getLogger(__name__)

RETENTION_DAYS_VARIABLE = "RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30
PURGE_INTERVAL_VARIABLE = "PURGE_INTERVAL_S"
DEFAULT_PURGE_INTERVAL_S = 3600.0

CHUNK = 500  # ids per IN list: below SQLite's (oldest) limit of 999 bound parameters
REDIS_KEY_PREFIX = "tracker:"  # Rasa's DEFAULT_REDIS_TRACKER_STORE_KEY_PREFIX
REDIS_TRACKER_DB = 0  # Rasa's RedisTrackerStore when the endpoints name no db
POSTGRESQL_SCHEMA_VARIABLE = "POSTGRESQL_SCHEMA"  # Rasa's search_path override, honoured here too

# Rasa's SQLTrackerStore table, as far as this module needs it (no ORM, no Rasa import).
EVENTS = sa.table("events", sa.column("id"), sa.column("sender_id"), sa.column("timestamp"))


def _positive(environ: Mapping[str, str], variable: str, default: float, unit: str) -> float:
    raw = environ.get(variable, "").strip()
    if not raw:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{variable}={raw!r} is not a number of {unit}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{variable}={raw!r} must be a positive number of {unit}")
    return value


def retention_from_env(environ: Optional[Mapping[str, str]] = None) -> timedelta:
    """RETENTION_DAYS (default 30; fractions allowed) as a period; ValueError unless positive."""
    environ = os.environ if environ is None else environ
    return timedelta(days=_positive(environ, RETENTION_DAYS_VARIABLE, DEFAULT_RETENTION_DAYS, "days"))


def purge_interval_from_env(environ: Optional[Mapping[str, str]] = None) -> float:
    """PURGE_INTERVAL_S (default 3600) in seconds; ValueError unless positive."""
    environ = os.environ if environ is None else environ
    return _positive(environ, PURGE_INTERVAL_VARIABLE, DEFAULT_PURGE_INTERVAL_S, "seconds")


def outbox_path_from_env(environ: Optional[Mapping[str, str]] = None) -> Path:
    """The staff outbox file, as `bot.staff.outbox.default_outbox()` finds it (without opening it)."""
    environ = os.environ if environ is None else environ
    return paths.absolute(environ.get(OUTBOX_VARIABLE) or paths.VAR_DIR / "outbox.db")


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


@dataclass(frozen=True)
class Removed:
    """What a purge or erasure removed (or, in a dry run, would remove)."""

    conversations: int = 0
    events: int = 0  # rows of the SQL events table; for Redis, the events in the deleted trackers
    notices: int = 0

    def __add__(self, other: object) -> Removed:
        if not isinstance(other, Removed):
            return NotImplemented
        return Removed(self.conversations + other.conversations, self.events + other.events,
                       self.notices + other.notices)

    def summary(self) -> str:
        """One line for the command line, e.g. '3 gesprekken, 41 gebeurtenissen, 2 meldingen'."""
        return ", ".join((
            _plural(self.conversations, "gesprek", "gesprekken"),
            _plural(self.events, "gebeurtenis", "gebeurtenissen"),
            _plural(self.notices, "melding", "meldingen"),
        ))


def _unique(ids: Iterable[str]) -> List[str]:
    return list(dict.fromkeys(ids))


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    size = CHUNK
    for start in range(0, len(items), size):
        yield items[start:start + size]


class ConversationStore(abc.ABC):
    """Rasa's tracker store as seen by retention and erasure: list, count and delete whole
    conversations. A context manager: `close()` releases every connection."""

    @staticmethod
    def from_endpoint_config(config: Mapping[str, Any]) -> ConversationStore:
        """The store of the `tracker_store:` section of endpoints.yml (a dict). `type: redis` is
        Redis; any other type (SQL, or a class path such as a SQLTrackerStore subclass) is SQL."""
        store_type = str(config.get("type") or "").strip().lower()
        if not store_type:
            raise ValueError("the tracker store has no type: Rasa keeps conversations in memory only")
        if store_type == "redis":
            return RedisConversationStore.from_endpoint_config(config)
        return SQLConversationStore.from_endpoint_config(config)

    @abc.abstractmethod
    def expired(self, cutoff: float) -> List[str]:
        """Conversation ids whose latest event is older than `cutoff` (epoch seconds)."""

    @abc.abstractmethod
    def delete(self, conversation_ids: Iterable[str], dry_run: bool = False) -> Removed:
        """Delete these conversations whole (dry run: only count); ids that are gone count zero."""

    @abc.abstractmethod
    def exists(self, conversation_id: str) -> bool:
        """Whether anything of this conversation is stored."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connections."""

    def erase(self, conversation_id: str) -> Removed:
        """Delete one conversation whole; zero counts when it is already gone."""
        return self.delete([conversation_id])

    def check_retention(self, retention: timedelta) -> None:
        """Warn when the store keeps conversations longer than `retention` by itself."""

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, kind: Optional[Type[BaseException]], error: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        self.close()


class SQLConversationStore(ConversationStore):
    """The `events` table of Rasa's SQLTrackerStore (one row per event, `sender_id` = conversation
    id, `timestamp` in epoch seconds), deleted through SQLAlchemy Core."""

    def __init__(self, url: URL | str) -> None:
        url = make_url(url)
        connect_args: Dict[str, Any] = {}
        self.sqlite_file: Optional[Path] = None
        if url.get_backend_name() == "sqlite":
            if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
                self.sqlite_file = paths.absolute(url.database)
                url = url.set(database=str(self.sqlite_file))
            connect_args["timeout"] = 30  # wait for Rasa's write lock instead of failing at once
        elif url.get_backend_name() == "postgresql" and os.environ.get(POSTGRESQL_SCHEMA_VARIABLE):
            connect_args["options"] = f"-csearch_path={os.environ[POSTGRESQL_SCHEMA_VARIABLE]}"
        self.url = url
        # NullPool: no connection outlives a call (the purge runs hourly; nothing idles in between)
        self.engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args, future=True,
                                       hide_parameters=True)
        if url.get_backend_name() == "sqlite":
            sa.event.listen(self.engine, "connect", secure_delete)

    @classmethod
    def from_endpoint_config(cls, config: Mapping[str, Any]) -> SQLConversationStore:
        """The URL exactly as Rasa's `SQLTrackerStore.get_db_url` builds it, except that a relative
        SQLite path is relative to the repository root, and that `login_db` (a database Rasa logs
        in to to create `db`) is not used: the events are in `db`."""
        return cls(sql_url(config))

    def _has_events(self, connection: Connection) -> bool:
        return sa.inspect(connection).has_table("events")

    def _absent(self) -> bool:
        """A SQLite file Rasa has not created yet: nothing stored, and none created by looking."""
        return self.sqlite_file is not None and not self.sqlite_file.exists()

    def expired(self, cutoff: float) -> List[str]:
        if self._absent():
            return []
        with self.engine.connect() as connection:
            if not self._has_events(connection):
                return []
            rows = connection.execute(
                sa.select(EVENTS.c.sender_id)
                .group_by(EVENTS.c.sender_id)
                .having(sa.func.max(EVENTS.c.timestamp) < cutoff)
                .order_by(EVENTS.c.sender_id)
            )
            return [sender_id for (sender_id,) in rows]

    def delete(self, conversation_ids: Iterable[str], dry_run: bool = False) -> Removed:
        ids = _unique(conversation_ids)
        removed = Removed()
        if not ids or self._absent():
            return removed
        with self.engine.begin() as connection:  # one transaction: all of these or none
            if not self._has_events(connection):
                return removed
            for chunk in _chunks(ids):
                chosen = EVENTS.c.sender_id.in_(list(chunk))
                conversations, events = connection.execute(
                    sa.select(sa.func.count(sa.distinct(EVENTS.c.sender_id)), sa.func.count()).where(chosen)
                ).one()
                if not dry_run and conversations:
                    events = connection.execute(sa.delete(EVENTS).where(chosen)).rowcount
                removed += Removed(conversations=int(conversations), events=int(events))
        return removed

    def exists(self, conversation_id: str) -> bool:
        if self._absent():
            return False
        with self.engine.connect() as connection:
            if not self._has_events(connection):
                return False
            return connection.execute(
                sa.select(sa.literal(1)).where(EVENTS.c.sender_id == conversation_id).limit(1)
            ).first() is not None

    def close(self) -> None:
        self.engine.dispose()


def redis_key_prefix(key_prefix: Optional[str]) -> str:
    """Rasa's key prefix: 'tracker:' by default, '<prefix>:tracker:' for an alphanumeric
    `key_prefix`; Rasa ignores (with a warning) any other prefix, and so does this."""
    if not key_prefix:
        return REDIS_KEY_PREFIX
    if isinstance(key_prefix, str) and key_prefix.isalnum():
        return f"{key_prefix}:{REDIS_KEY_PREFIX}"
    logger.warning("Redis key prefix %r is not alphanumeric: Rasa uses %r instead", key_prefix, REDIS_KEY_PREFIX)
    return REDIS_KEY_PREFIX


def _event_count(serialised: str) -> int:
    try:
        events = json.loads(serialised).get("events")
    except (ValueError, AttributeError):
        return 0
    return len(events) if isinstance(events, list) else 0


class RedisConversationStore(ConversationStore):
    """Rasa's RedisTrackerStore: one key per conversation, `<key prefix><conversation id>`, holding
    the serialised tracker, expiring `record_exp` seconds after the last save."""

    def __init__(self, client: redis.Redis, key_prefix: str = REDIS_KEY_PREFIX,
                 record_exp: Optional[float] = None) -> None:
        self.client = client
        self.key_prefix = key_prefix
        self.record_exp = record_exp

    @classmethod
    def from_endpoint_config(cls, config: Mapping[str, Any]) -> RedisConversationStore:
        client = redis_client(config, REDIS_TRACKER_DB, decode_responses=True)
        record_exp = config.get("record_exp")
        return cls(client, redis_key_prefix(config.get("key_prefix")),
                   float(record_exp) if record_exp else None)

    def key(self, conversation_id: str) -> str:
        return self.key_prefix + conversation_id

    def expired(self, cutoff: float) -> List[str]:
        return []  # Redis expires each conversation itself (record_exp)

    def delete(self, conversation_ids: Iterable[str], dry_run: bool = False) -> Removed:
        removed = Removed()
        for chunk in _chunks(_unique(conversation_ids)):
            keys = [self.key(conversation_id) for conversation_id in chunk]
            present = [(key, value) for key, value in zip(keys, self.client.mget(keys)) if value is not None]
            if not present:
                continue
            conversations = len(present) if dry_run else int(self.client.delete(*(key for key, _ in present)))
            removed += Removed(conversations=conversations, events=sum(_event_count(value) for _, value in present))
        return removed

    def exists(self, conversation_id: str) -> bool:
        return bool(self.client.exists(self.key(conversation_id)))

    def check_retention(self, retention: timedelta) -> None:
        limit = retention.total_seconds()
        if not self.record_exp:
            logger.warning("Redis tracker store without record_exp: conversations are kept until erased "
                           "(set record_exp to at most %d s)", limit)
        elif self.record_exp > limit:
            logger.warning("Redis tracker store keeps conversations %d s (record_exp), longer than the "
                           "retention period of %d s", self.record_exp, limit)

    def close(self) -> None:
        self.client.close()


def delete_notices(outbox: Path, conversation_ids: Iterable[str] = (), created_before: Optional[float] = None,
                   dry_run: bool = False) -> int:
    """Delete (dry run: count) the staff notices of these conversations and, with `created_before`,
    every notice created before it, delivered or not; in one transaction. A missing outbox file
    holds nothing (and is not created)."""
    ids = _unique(conversation_ids)
    if not outbox.exists() or (not ids and created_before is None):
        return 0
    with closing(sqlite3.connect(str(outbox), timeout=30, isolation_level=None)) as db:
        secure_delete(db)
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'notices'").fetchone() is None:
            return 0
        db.execute("BEGIN" if dry_run else "BEGIN IMMEDIATE")  # IMMEDIATE: nobody writes in between
        try:
            doomed: Set[int] = set()
            if created_before is not None:
                doomed.update(row[0] for row in db.execute("SELECT id FROM notices WHERE created < ?",
                                                           (created_before,)))
            for chunk in _chunks(ids):
                marks = ", ".join("?" * len(chunk))
                doomed.update(row[0] for row in db.execute(
                    f"SELECT id FROM notices WHERE conversation_id IN ({marks})", tuple(chunk)))
            if not dry_run:
                for chunk in _chunks(sorted(doomed)):
                    db.execute(f"DELETE FROM notices WHERE id IN ({', '.join('?' * len(chunk))})", tuple(chunk))
            db.execute("ROLLBACK" if dry_run else "COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return len(doomed)


def secure_delete(connection: Any, _record: Any = None) -> None:
    """SQLite overwrites what it deletes (else erased text stays readable in the file's free pages)."""
    connection.execute("PRAGMA secure_delete = ON")


def tracker_store_config(endpoints: Optional[Path] = None) -> Dict[str, Any]:
    """The `tracker_store` section of the endpoints file the Rasa server runs with
    (bot.paths.endpoints_path()), with ${VARIABLES} filled in from the environment as Rasa does."""
    path = endpoints or paths.endpoints_path()
    config = yaml.safe_load(os.path.expandvars(path.read_text(encoding="utf-8"))) or {}
    if not config.get("tracker_store"):
        raise ValueError(f"{path} configures no tracker store: Rasa keeps conversations in memory only")
    return dict(config["tracker_store"])


def purge(config: Mapping[str, Any], retention: timedelta, outbox_path: Optional[Path],
          now: Optional[float] = None, dry_run: bool = False) -> Removed:
    """Delete every conversation whose last event is older than `retention` (at `now`), and the
    outbox notices of those conversations and those created before the cutoff. Dry run: count only."""
    if retention <= timedelta(0):
        raise ValueError(f"the retention period must be positive, not {retention}")
    now = time.time() if now is None else now
    cutoff = now - retention.total_seconds()
    with ConversationStore.from_endpoint_config(config) as store:
        store.check_retention(retention)
        expired = store.expired(cutoff)
        removed = store.delete(expired, dry_run=dry_run)
    if outbox_path is not None:
        removed += Removed(notices=delete_notices(outbox_path, expired, created_before=cutoff, dry_run=dry_run))
    removed += Removed(notices=delete_shared_notices(config, expired, created_before=cutoff, dry_run=dry_run))
    logger.info("%s conversations idle for more than %g days: %s", "Would purge (dry run)" if dry_run else "Purged",
                retention.total_seconds() / 86400, removed.summary())
    if expired:
        logger.debug("Conversations %s: %s", "expired" if dry_run else "purged", ", ".join(map(repr, expired)))
    return removed


def conversation_exists(config: Mapping[str, Any], conversation_id: str) -> bool:
    """Whether the tracker store holds any event of this conversation (without creating one, as
    reading it through Rasa's HTTP API would)."""
    with ConversationStore.from_endpoint_config(config) as store:
        return store.exists(conversation_id)


def erase(config: Mapping[str, Any], conversation_id: str, outbox_path: Optional[Path]) -> Removed:
    """Delete every event and staff notice of one conversation at once; zero counts when there is
    nothing (left) to delete."""
    if not conversation_id:
        raise ValueError("no conversation id to erase")
    with ConversationStore.from_endpoint_config(config) as store:
        removed = store.erase(conversation_id)
    if outbox_path is not None:
        removed += Removed(notices=delete_notices(outbox_path, [conversation_id]))
    removed += Removed(notices=delete_shared_notices(config, [conversation_id]))
    logger.info("Erased conversation %r: %s", conversation_id, removed.summary())
    return removed


async def purge_periodically(interval_s: Optional[float] = None) -> None:
    """The retention job: purge now, then every PURGE_INTERVAL_S seconds, with the settings of the
    environment (RETENTION_DAYS, RASA_ENDPOINTS, STAFF_OUTBOX). A failed round (the database is
    down) is logged and tried again at the next one."""
    interval_s = purge_interval_from_env() if interval_s is None else interval_s
    while True:
        try:
            await asyncio.to_thread(purge, tracker_store_config(), retention_from_env(), outbox_path_from_env())
        except Exception as error:
            logger.error("Retention purge failed, trying again in %g s: %s", interval_s, error)
        await asyncio.sleep(interval_s)
