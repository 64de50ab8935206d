"""Rasa's SQL tracker store (SQLite or PostgreSQL), careful with health data.

endpoints.yml: `tracker_store: {type: bot.stores.tracker_store.PrivateSQLTrackerStore, dialect: …}`
with the same keys as Rasa's `SQL` type. The differences from `SQLTrackerStore`:
- **Redaction at rest.** What people typed is written with e-mail addresses, phone numbers, BSN,
  IBAN, postcode+huisnummer and dates replaced by typed placeholders (bot/privacy/redaction.py):
  visitors' messages with their parse data, slots, and staff replies. The assistant's own messages
  (article quotes, referrals) are kept as sent: they hold nothing a person typed. The turn being
  processed is not affected: the NLU components and the actions see what the visitor typed;
  later turns read the redacted history.
- **Erasure on request.** When a turn's new events set the slot `erasure_confirmed` (the erasure
  action, after the visitor confirmed), the conversation's rows are deleted instead of stored, with
  its staff notices (bot/privacy/retention.py); the next message starts a new conversation.
- **No message text in logs.** Database errors never carry the statement's parameters (the events'
  JSON), whatever the log level; on SQLite, deleted rows are overwritten (`secure_delete`).
- **No turn silently dropped.** When the database cannot be reached, reading or saving raises
  `TrackerStoreUnavailable`, which Rasa's `FailSafeTrackerStore` lets through (bot/rasa_patches.py)
  instead of keeping the turn in memory, where it is lost; the REST channel answers 503 and the
  client sends the message again (bot/channels/rest.py). A pooled connection that sat idle for
  PING_AFTER_IDLE_S is checked before use and replaced when the database dropped it, so the first
  turn after the database is back succeeds; under load connections come back within milliseconds
  and skip that round trip (`pool_pre_ping` made it on every checkout: twice per message).
  A turn's events go to the event broker after they are committed, so an event is published only
  once it is stored.
- **Reads that stay cheap as a conversation grows.** Rasa's query for the latest session joins
  every event row to a subquery for the session's start, which PostgreSQL re-runs per row (6 ms
  for 191 events, quadratic in the conversation's length; it runs twice per message, to read the
  tracker and to count the stored events before a save). Here the start is an uncorrelated scalar
  subquery, computed once, and a read fetches only the events' JSON, not ORM objects: same rows,
  same order, parsed by ujson (a dependency of Rasa; twice as fast as `json`, same values). A save
  takes the number of stored events from the read of the same turn instead of counting the rows
  again: one conversation has one writer (the lock store holds it from the read to the save).

On PostgreSQL, an erasure also deletes the conversation's staff notices from the shared outbox
table (bot/staff/outbox.py) in the same transaction.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import time
from typing import Any, Dict, Generator, Iterator, Optional, Text

import sqlalchemy as sa
import ujson
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from rasa.shared.core.events import BotUttered, Event, SessionStarted, SlotSet
from rasa.shared.core.trackers import DialogueStateTracker

from bot.contract import ERASURE_CONFIRMED_SLOT, STAFF_USER
from bot.privacy.redaction import redact_value
from bot.privacy.retention import delete_notices, outbox_path_from_env, secure_delete
from bot.staff.outbox import NOTICES, OPEN_HANDOFFS

logger = logging.getLogger(__name__)


def written_by_the_assistant(event: Event) -> bool:
    return isinstance(event, BotUttered) and STAFF_USER not in (event.metadata or {})


def erasure_confirmed(event: Event) -> bool:
    return isinstance(event, SlotSet) and event.key == ERASURE_CONFIRMED_SLOT and bool(event.value)


class TrackerStoreUnavailable(Exception):
    """The conversation database cannot be reached: the turn is neither read nor stored."""


# A pooled connection unused this long is pinged before it is used again.
PING_AFTER_IDLE_S = 1.0
CHECKED_IN_AT = "checked_in_at"


def ping_when_idle(engine: sa.engine.Engine, idle_s: float = PING_AFTER_IDLE_S) -> None:
    """SQLAlchemy's pessimistic disconnect handling (a checkout listener that raises
    `DisconnectionError`: the pool replaces the connection), only for connections idle `idle_s`."""

    @sa.event.listens_for(engine, "checkin")
    def checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[CHECKED_IN_AT] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if time.monotonic() - record.info.get(CHECKED_IN_AT, time.monotonic()) < idle_s:
            return  # new, or back within idle_s
        try:
            ping(dbapi_connection)
        except Exception as error:
            raise sa.exc.DisconnectionError(type(error).__name__) from error


def ping(dbapi_connection: Any) -> None:
    with contextlib.closing(dbapi_connection.cursor()) as cursor:
        cursor.execute("SELECT 1")


# How many of a tracker's events are stored, as the read of this turn found them (an attribute of
# the tracker object: a save of another tracker of the conversation counts the rows instead).
STORED_EVENTS_ATTRIBUTE = "_private_sql_stored_events"


def stored_events(tracker: DialogueStateTracker) -> Optional[int]:
    return getattr(tracker, STORED_EVENTS_ATTRIBUTE, None)


def remember_stored_events(tracker: DialogueStateTracker, count: Optional[int]) -> None:
    setattr(tracker, STORED_EVENTS_ATTRIBUTE, count)


class PrivateSQLTrackerStore(SQLTrackerStore):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine.hide_parameters = True  # SQL errors name the statement, never the visitor's text
        ping_when_idle(self.engine)  # a connection the database dropped is replaced, not used
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", secure_delete)

    @contextlib.contextmanager
    def session_scope(self) -> Generator[Any, None, None]:
        """Rasa's session scope; a database that cannot be reached raises `TrackerStoreUnavailable`."""
        try:
            with super().session_scope() as session:
                yield session
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
            logger.error("Conversation database unavailable: %s", type(error.orig or error).__name__)
            raise TrackerStoreUnavailable(str(type(error.orig or error).__name__)) from error

    def _event_query(self, session: Any, sender_id: Text, fetch_events_from_all_sessions: bool) -> Any:
        """Rasa's query (the conversation's events in id order; unless `fetch_events_from_all_sessions`,
        those from the latest `session_started` on), with the session's start as a scalar
        subquery that the database computes once."""
        query = session.query(self.SQLEvent).filter(self.SQLEvent.sender_id == sender_id)
        if not fetch_events_from_all_sessions:
            session_start = (
                session.query(sa.func.max(self.SQLEvent.timestamp))
                .filter(self.SQLEvent.sender_id == sender_id, self.SQLEvent.type_name == SessionStarted.type_name)
                .scalar_subquery()
            )
            query = query.filter(sa.or_(self.SQLEvent.timestamp >= session_start, session_start.is_(None)))
        return query.order_by(self.SQLEvent.id)

    async def _retrieve(self, sender_id: Text, fetch_events_from_all_sessions: bool) -> Optional[DialogueStateTracker]:
        """Rasa's `_retrieve`, reading only the events' JSON; the tracker remembers how many events
        are stored (its latest session's: what `save` would count)."""
        with self.session_scope() as session:
            rows = self._event_query(session, sender_id, fetch_events_from_all_sessions).with_entities(self.SQLEvent.data).all()
        if not self.domain or not rows:
            return None
        tracker = DialogueStateTracker.from_dict(sender_id, [ujson.loads(data) for (data,) in rows], self.domain.slots)
        remember_stored_events(tracker, None if fetch_events_from_all_sessions else len(rows))
        return tracker

    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator[Event]:
        """The tracker's events after the stored ones: counted by the read of this turn when the
        tracker came from one, else (as Rasa does) by counting the rows."""
        stored = stored_events(tracker)
        if stored is None or stored > len(tracker.events):
            return super()._additional_events(session, tracker)
        return itertools.islice(tracker.events, stored, len(tracker.events))

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Stores the turn's new events, redacted; or, when the visitor confirmed an erasure in it,
        deletes the whole conversation. Then streams the new events to the event broker."""
        with self.session_scope() as session:
            events = list(self._additional_events(session, tracker))
            if any(erasure_confirmed(event) for event in events):
                removed = session.query(self.SQLEvent).filter(self.SQLEvent.sender_id == tracker.sender_id).delete()
                notices = self._delete_shared_notices(session, tracker.sender_id)
                session.commit()
                if self.engine.dialect.name != "postgresql":
                    notices = delete_notices(outbox_path_from_env(), [tracker.sender_id])
                logger.info("Conversation %s erased on request: %d events, %d staff notices", tracker.sender_id, removed, notices)
                remember_stored_events(tracker, None)
            else:
                if events:  # one INSERT for the turn (the ORM sends one INSERT ... RETURNING id per event)
                    session.execute(self.SQLEvent.__table__.insert(), [self._row(tracker.sender_id, event) for event in events])
                session.commit()
                if stored_events(tracker) is not None:
                    remember_stored_events(tracker, len(tracker.events))
        if self.event_broker is not None:
            await self._stream_new_events(self.event_broker, events, tracker.sender_id)

    def _delete_shared_notices(self, session: Any, sender_id: Text) -> int:
        """On PostgreSQL: the conversation's notices (and open hand-off) in the shared outbox tables,
        if they exist."""
        if self.engine.dialect.name != "postgresql" or not sa.inspect(session.connection()).has_table(NOTICES.name):
            return 0
        session.execute(sa.delete(OPEN_HANDOFFS).where(OPEN_HANDOFFS.c.conversation_id == sender_id))
        return int(session.execute(sa.delete(NOTICES).where(NOTICES.c.conversation_id == sender_id)).rowcount)

    def _row(self, sender_id: Text, event: Event) -> Dict[Text, Any]:
        """The event's row of the events table (its columns as Rasa's `SQLEvent` fills them), redacted."""
        data = event.as_dict() if written_by_the_assistant(event) else redact_value(event.as_dict())
        return {
            "sender_id": sender_id,
            "type_name": event.type_name,
            "timestamp": data.get("timestamp"),
            "intent_name": (data.get("parse_data") or {}).get("intent", {}).get(INTENT_NAME_KEY),
            "action_name": data.get("name"),
            "data": json.dumps(data),
        }
