"""Staff notices that are never lost and never hold a reply back: a durable outbox.

An action queues a notice (one row) and returns at once; the delivery task of the action server
(and of the staff consumer, bot/staff/consumer.py) posts queued notices to the staff channel, each
until it succeeds, retrying with a back-off (1 s doubling to RETRY_MAX_S). A homeserver that is
down for minutes gets every notice afterwards, each once. Where the rows live is chosen by the
endpoints file (bot/stores/backends.py):
- `make run` (SQLite tracker store): `Outbox`, a SQLite file (STAFF_OUTBOX, default var/outbox.db),
  one delivering process;
- a PostgreSQL tracker store: `SharedOutbox`, table `staff_notices` in that same database, which
  any number of action servers and consumers enqueue into and deliver from. A deliverer claims a
  notice with one `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`, which moves
  its next attempt CLAIM_S ahead: no other deliverer takes it meanwhile, and a deliverer that died
  holding it leaves it to the others after CLAIM_S. Only a conversation's oldest undelivered
  notice can be claimed, so one conversation's notices reach staff in order, whoever delivers.
A notice may carry a `key` (e.g. the Rasa event it was made from): a second enqueue with the same
key is ignored, so a redelivered broker message queues nothing twice. Imports nothing of Rasa.
"""
from __future__ import annotations

import abc
import asyncio
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, List, Mapping, Optional, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL

from bot import paths
from bot.staff.notifiers import StaffNotifier
from bot.stores.backends import TRACKER_STORE_SECTION, endpoints_config, shared_sql_url
from bot.tokens import private_directory

logger = logging.getLogger(__name__)

OUTBOX_VARIABLE = "STAFF_OUTBOX"  # the outbox file (default var/outbox.db)
RETRY_MAX_S = 300.0
BATCH = 20
CLAIM_S = 60.0  # a claimed notice is another deliverer's again after this (> the notifiers' 15 s timeout)
CONNECT_TIMEOUT_S = 5

SCHEMA = """
CREATE TABLE IF NOT EXISTS notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    delivered REAL,
    key TEXT UNIQUE
)
"""


@dataclass(frozen=True)
class Notice:
    id: int
    conversation_id: str
    text: str
    attempts: int


class Delivery(abc.ABC):
    """Delivery from an outbox: `claim` the next notice due, post it, mark it delivered or failed."""

    wakeup: Optional[asyncio.Event] = None

    @abc.abstractmethod
    def claim(self, now: float) -> Optional[Notice]:
        """The next notice due at `now`, taken for this deliverer; None when none is due."""

    @abc.abstractmethod
    def delivered(self, notice: Notice, now: float) -> None:
        """The notice reached staff: it is never posted again."""

    @abc.abstractmethod
    def failed(self, notice: Notice, now: float) -> None:
        """The post failed: tried again after the back-off."""

    async def deliver_due(self, notifier: StaffNotifier, now: Optional[float] = None) -> int:
        """Post every notice that is due (at `now`), in order; returns how many were delivered."""
        count = 0
        for _ in range(BATCH):
            notice = await asyncio.to_thread(self.claim, time.time() if now is None else now)
            if notice is None:
                break
            try:
                await notifier.post(notice.text)
            except Exception as error:  # stays queued: tried again after the back-off
                logger.warning("Staff notice %d (conversation %s) not delivered yet: %s",
                               notice.id, notice.conversation_id, type(error).__name__)
                await asyncio.to_thread(self.failed, notice, time.time())
                break  # the channel is down: keep the order, try the rest later
            await asyncio.to_thread(self.delivered, notice, time.time())
            count += 1
        return count

    async def deliver_forever(self, notifier: Callable[[], Optional[StaffNotifier]], poll_s: float = 1.0) -> None:
        """The delivery task: wakes on every enqueue and at least every `poll_s` seconds."""
        self.wakeup = asyncio.Event()
        while True:
            channel = notifier()
            if channel is not None:
                try:
                    await self.deliver_due(channel)
                except Exception as error:  # the outbox's database is down: try again at the next poll
                    logger.error("Staff notices not delivered: the outbox is unavailable (%s)", type(error).__name__)
            try:
                await asyncio.wait_for(self.wakeup.wait(), poll_s)
            except asyncio.TimeoutError:
                pass
            self.wakeup.clear()


class Outbox(Delivery):
    def __init__(self, path: Path) -> None:
        private_directory(path.parent)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        os.chmod(path, 0o600)
        self._db.execute(SCHEMA)
        if "key" not in {row[1] for row in self._db.execute("PRAGMA table_info(notices)")}:  # an older file
            self._db.execute("ALTER TABLE notices ADD COLUMN key TEXT")
            self._db.execute("CREATE UNIQUE INDEX IF NOT EXISTS notices_key ON notices (key)")
        self.wakeup: Optional[asyncio.Event] = None

    def enqueue(self, conversation_id: str, text: str, now: Optional[float] = None, key: Optional[str] = None) -> int:
        """Queues a notice; returns its id (0 when a notice with this `key` is queued already)."""
        now = time.time() if now is None else now
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO notices (conversation_id, text, created, next_attempt, key) VALUES (?, ?, ?, ?, ?)",
                (conversation_id, text, now, now, key),
            )
        if self.wakeup is not None:
            self.wakeup.set()
        return int(cursor.lastrowid) if cursor.rowcount else 0

    def due(self, now: Optional[float] = None, limit: int = BATCH) -> List[Notice]:
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT id, conversation_id, text, attempts FROM notices "
                "WHERE delivered IS NULL AND next_attempt <= ? ORDER BY id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [Notice(*row) for row in rows]

    def claim(self, now: float) -> Optional[Notice]:
        """The first notice due (one process delivers from a SQLite outbox: nothing to lock)."""
        due = self.due(now, limit=1)
        return due[0] if due else None

    def pending(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM notices WHERE delivered IS NULL").fetchone()[0]

    def delivered(self, notice: Notice, now: float) -> None:
        with self._lock:
            self._db.execute("UPDATE notices SET delivered = ?, attempts = attempts + 1 WHERE id = ?", (now, notice.id))

    def failed(self, notice: Notice, now: float) -> None:
        delay = min(RETRY_MAX_S, 2.0 ** notice.attempts)
        with self._lock:
            self._db.execute(
                "UPDATE notices SET attempts = attempts + 1, next_attempt = ? WHERE id = ?", (now + delay, notice.id)
            )

METADATA = sa.MetaData()
NOTICES = sa.Table(
    "staff_notices",
    METADATA,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.Text, nullable=False, index=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt", sa.Float, nullable=False),
    sa.Column("delivered", sa.Float),
    sa.Column("key", sa.Text, unique=True),
)
# The conversations with an open hand-off (the staff consumer's state, so that a restarted or second
# consumer mirrors the same conversations).
OPEN_HANDOFFS = sa.Table(
    "staff_open_handoffs",
    METADATA,
    sa.Column("conversation_id", sa.Text, primary_key=True),
)
SCHEMA_LOCK = 7_466_102  # pg_advisory_xact_lock id: one process creates the table at a time


class SharedOutbox(Delivery):
    """The outbox as a PostgreSQL table (`staff_notices`) shared by every process of a deployment."""

    def __init__(self, url: URL | str) -> None:
        self.engine = sa.create_engine(
            url, future=True, hide_parameters=True, pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
        )
        with self.engine.begin() as connection:
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK)))
            METADATA.create_all(connection)
        self.wakeup = None

    def enqueue(self, conversation_id: str, text: str, now: Optional[float] = None, key: Optional[str] = None) -> int:
        """Queues a notice; returns its id (0 when a notice with this `key` is queued already)."""
        now = time.time() if now is None else now
        statement = (
            postgresql.insert(NOTICES)
            .values(conversation_id=conversation_id, text=text, created=now, next_attempt=now, key=key)
            .on_conflict_do_nothing(index_elements=[NOTICES.c.key])
            .returning(NOTICES.c.id)
        )
        with self.engine.begin() as connection:
            row = connection.execute(statement).first()
        if self.wakeup is not None:
            self.wakeup.set()
        return int(row[0]) if row else 0

    def claim(self, now: float) -> Optional[Notice]:
        """Takes the oldest notice due for CLAIM_S seconds; rows other deliverers hold are skipped.
        Only a conversation's first undelivered notice can be taken: its notices reach staff in order."""
        earlier = NOTICES.alias("earlier")
        oldest_due = (
            sa.select(NOTICES.c.id)
            .where(NOTICES.c.delivered.is_(None), NOTICES.c.next_attempt <= now)
            .where(~sa.exists().where(
                earlier.c.conversation_id == NOTICES.c.conversation_id,
                earlier.c.delivered.is_(None),
                earlier.c.id < NOTICES.c.id,
            ))
            .order_by(NOTICES.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        statement = (
            sa.update(NOTICES)
            .where(NOTICES.c.id == oldest_due)
            .values(next_attempt=now + CLAIM_S)
            .returning(NOTICES.c.id, NOTICES.c.conversation_id, NOTICES.c.text, NOTICES.c.attempts)
        )
        with self.engine.begin() as connection:
            row = connection.execute(statement).first()
        return Notice(*row) if row else None

    def pending(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(
                sa.select(sa.func.count()).select_from(NOTICES).where(NOTICES.c.delivered.is_(None))
            ).scalar_one())

    def delivered(self, notice: Notice, now: float) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.update(NOTICES).where(NOTICES.c.id == notice.id)
                               .values(delivered=now, attempts=NOTICES.c.attempts + 1))

    def failed(self, notice: Notice, now: float) -> None:
        delay = min(RETRY_MAX_S, 2.0 ** notice.attempts)
        with self.engine.begin() as connection:
            connection.execute(sa.update(NOTICES).where(NOTICES.c.id == notice.id)
                               .values(next_attempt=now + delay, attempts=NOTICES.c.attempts + 1))

    def delete(self, conversation_ids: Iterable[str] = (), created_before: Optional[float] = None,
               dry_run: bool = False) -> int:
        """Deletes (dry run: counts) the notices of these conversations and, with `created_before`,
        every notice created before it, delivered or not, in one transaction; returns how many."""
        ids = list(dict.fromkeys(conversation_ids))
        chosen = [NOTICES.c.conversation_id.in_(ids)] if ids else []
        if created_before is not None:
            chosen.append(NOTICES.c.created < created_before)
        if not chosen:
            return 0
        with self.engine.begin() as connection:
            if dry_run:
                return int(connection.execute(sa.select(sa.func.count()).select_from(NOTICES).where(sa.or_(*chosen))).scalar_one())
            if ids:  # nothing of these conversations stays, not even that a hand-off was open
                connection.execute(sa.delete(OPEN_HANDOFFS).where(OPEN_HANDOFFS.c.conversation_id.in_(ids)))
            return int(connection.execute(sa.delete(NOTICES).where(sa.or_(*chosen))).rowcount)

    def close(self) -> None:
        self.engine.dispose()


class StaffOutbox(Protocol):
    wakeup: Optional[asyncio.Event]

    def enqueue(self, conversation_id: str, text: str, now: Optional[float] = None, key: Optional[str] = None) -> int: ...

    def pending(self) -> int: ...

    async def deliver_due(self, notifier: StaffNotifier, now: Optional[float] = None) -> int: ...

    async def deliver_forever(self, notifier: Callable[[], Optional[StaffNotifier]], poll_s: float = 1.0) -> None: ...


def outbox_for(endpoints_file: Optional[Path] = None) -> StaffOutbox:
    """The outbox the endpoints file selects: PostgreSQL with a PostgreSQL tracker store, else the
    SQLite file on STAFF_OUTBOX (default var/outbox.db)."""
    url = shared_sql_url(endpoints_config(endpoints_file))
    if url is not None:
        return SharedOutbox(url)
    return Outbox(paths.absolute(os.environ.get(OUTBOX_VARIABLE) or paths.VAR_DIR / "outbox.db"))


def delete_shared_notices(tracker_store: Mapping[str, Any], conversation_ids: Iterable[str] = (),
                          created_before: Optional[float] = None, dry_run: bool = False) -> int:
    """Retention and erasure of the shared outbox: `SharedOutbox.delete` on the PostgreSQL database
    of this `tracker_store:` section; 0 when the tracker store is not PostgreSQL (the SQLite outbox
    file is bot/privacy/retention.py's `delete_notices`)."""
    url = shared_sql_url({TRACKER_STORE_SECTION: tracker_store})
    if url is None:
        return 0
    outbox = SharedOutbox(url)
    try:
        return outbox.delete(conversation_ids, created_before, dry_run)
    finally:
        outbox.close()


_OUTBOX: Optional[StaffOutbox] = None


def default_outbox() -> StaffOutbox:
    """This process's outbox, as the endpoints file it runs with (RASA_ENDPOINTS) selects."""
    global _OUTBOX
    if _OUTBOX is None:
        _OUTBOX = outbox_for()
    return _OUTBOX
