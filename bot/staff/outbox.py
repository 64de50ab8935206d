"""Staff notices that are never lost and never hold a reply back: a durable outbox.

An action queues a notice (one SQLite row, var/outbox.db by default) and returns at once; the
action server's delivery task posts queued notices to the staff channel, each until it succeeds,
retrying with a back-off (1 s doubling to RETRY_MAX_S). A homeserver that is down for minutes gets
every notice afterwards, each once. Imports nothing of Rasa.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from bot import paths
from bot.staff.notifiers import StaffNotifier
from bot.tokens import private_directory

logger = logging.getLogger(__name__)

OUTBOX_VARIABLE = "STAFF_OUTBOX"  # the outbox file (default var/outbox.db)
RETRY_MAX_S = 300.0
BATCH = 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    delivered REAL
)
"""


@dataclass(frozen=True)
class Notice:
    id: int
    conversation_id: str
    text: str
    attempts: int


class Outbox:
    def __init__(self, path: Path) -> None:
        private_directory(path.parent)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        os.chmod(path, 0o600)
        self._db.execute(SCHEMA)
        self.wakeup: Optional[asyncio.Event] = None

    def enqueue(self, conversation_id: str, text: str, now: Optional[float] = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO notices (conversation_id, text, created, next_attempt) VALUES (?, ?, ?, ?)",
                (conversation_id, text, now, now),
            )
        if self.wakeup is not None:
            self.wakeup.set()
        return int(cursor.lastrowid)

    def due(self, now: Optional[float] = None, limit: int = BATCH) -> List[Notice]:
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT id, conversation_id, text, attempts FROM notices "
                "WHERE delivered IS NULL AND next_attempt <= ? ORDER BY id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [Notice(*row) for row in rows]

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

    async def deliver_due(self, notifier: StaffNotifier, now: Optional[float] = None) -> int:
        """Post every notice that is due (at `now`), in order; returns how many were delivered."""
        count = 0
        for notice in self.due(now):
            try:
                await notifier.post(notice.text)
            except Exception as error:  # stays queued: tried again after the back-off
                logger.warning("Staff notice %d (conversation %s) not delivered yet: %s",
                               notice.id, notice.conversation_id, type(error).__name__)
                self.failed(notice, time.time())
                break  # the channel is down: keep the order, try the rest later
            self.delivered(notice, time.time())
            count += 1
        return count

    async def deliver_forever(self, notifier: Callable[[], Optional[StaffNotifier]], poll_s: float = 1.0) -> None:
        """The delivery task: wakes on every enqueue and at least every `poll_s` seconds."""
        self.wakeup = asyncio.Event()
        while True:
            channel = notifier()
            if channel is not None:
                await self.deliver_due(channel)
            try:
                await asyncio.wait_for(self.wakeup.wait(), poll_s)
            except asyncio.TimeoutError:
                pass
            self.wakeup.clear()


_OUTBOX: Optional[Outbox] = None


def default_outbox() -> Outbox:
    """This process's outbox on STAFF_OUTBOX (default var/outbox.db)."""
    global _OUTBOX
    if _OUTBOX is None:
        _OUTBOX = Outbox(paths.absolute(os.environ.get(OUTBOX_VARIABLE) or paths.VAR_DIR / "outbox.db"))
    return _OUTBOX
