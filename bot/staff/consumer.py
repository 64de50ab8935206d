"""The staff consumer of a cluster: reads the Rasa events the RabbitMQ event broker publishes and
mirrors a visitor's messages during an open hand-off to staff, as `HandOffMirror` does inside a
single Rasa server (the decision is the same function, `bot.staff.mirror.mirror_text`).

    python -m bot.staff.consumer --endpoints endpoints.cluster.yml

From the endpoints file: `event_broker` (Rasa's `type: pika`: url, port, username, password,
queues, exchange_name) and the tracker store, which selects the outbox (bot/staff/outbox.py; a
PostgreSQL tracker store: the shared table). Durable, each notice once:
- a mirrored message is written to the outbox first and the broker message acknowledged after
  that write; if the consumer dies in between, RabbitMQ delivers the message again and the outbox
  ignores it (the notice's key is the event's conversation and time);
- while the outbox's database is down, the message stays unacknowledged and the write is retried;
- the queue is durable and declared (and bound to Rasa's exchange) at start, as Rasa declares it:
  events published while the consumer is down wait there;
- which hand-offs are open is kept in the shared database (`staff_open_handoffs`) with a PostgreSQL
  outbox, so a restarted consumer goes on mirroring them.
The consumer also delivers the outbox (`--no-deliver` leaves that to the action servers); several
deliverers never post one notice twice (the outbox's row claim).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Any, Dict, Iterator, MutableSet, Optional, Set

import aio_pika
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from bot.staff.mirror import concerns_hand_offs, mirror_text
from bot.staff.notifiers import staff_notifier_from_env
from bot.staff.outbox import OPEN_HANDOFFS, SharedOutbox, StaffOutbox, outbox_for
from bot.stores.backends import EVENT_BROKER_SECTION, endpoints_config

logger = logging.getLogger(__name__)

# Rasa's PikaEventBroker defaults (rasa/core/brokers/pika.py)
DEFAULT_EXCHANGE = "rasa-exchange"
DEFAULT_QUEUE = "rasa_core_events"
DEFAULT_PORT = 5672
PREFETCH = 10
RETRY_MAX_S = 30.0
DRAIN_S = 5.0  # at stop: how long the events already delivered may take (bot/stack.py kills after 8 s)


class SharedOpenHandOffs(MutableSet[str]):
    """The open hand-offs as rows of `staff_open_handoffs` in the shared outbox's database."""

    def __init__(self, outbox: SharedOutbox) -> None:
        self.engine = outbox.engine

    def __contains__(self, conversation_id: object) -> bool:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(OPEN_HANDOFFS.c.conversation_id).where(OPEN_HANDOFFS.c.conversation_id == str(conversation_id))
            ).first() is not None

    def __iter__(self) -> Iterator[str]:
        with self.engine.connect() as connection:
            return iter([row[0] for row in connection.execute(sa.select(OPEN_HANDOFFS.c.conversation_id))])

    def __len__(self) -> int:
        return len(list(iter(self)))

    def add(self, conversation_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(postgresql.insert(OPEN_HANDOFFS).values(conversation_id=conversation_id)
                               .on_conflict_do_nothing())

    def discard(self, conversation_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.delete(OPEN_HANDOFFS).where(OPEN_HANDOFFS.c.conversation_id == conversation_id))


def event_key(event: Dict[str, Any]) -> str:
    """The outbox key of a mirrored event: its conversation and its time (or message id)."""
    return f"mirror:{event.get('sender_id')}:{event.get('message_id') or repr(event.get('timestamp'))}"


def handle_event(event: Dict[str, Any], outbox: StaffOutbox, open_handoffs: MutableSet[str]) -> bool:
    """Applies one event; True when it queued a notice."""
    text = mirror_text(event, open_handoffs)
    if text is None:
        return False
    return outbox.enqueue(str(event.get("sender_id")), text, key=event_key(event)) > 0


def broker_settings(endpoints: Dict[str, Any]) -> Dict[str, Any]:
    section = dict(endpoints.get(EVENT_BROKER_SECTION) or {})
    if str(section.get("type") or "").lower() != "pika":
        raise ValueError("the endpoints file configures no RabbitMQ event broker (event_broker: type: pika)")
    queues = section.get("queues") or [DEFAULT_QUEUE]
    return {
        "url": section["url"] if str(section.get("url") or "").startswith("amqp") else None,
        "host": section.get("url") or "localhost",
        "port": int(section.get("port") or DEFAULT_PORT),
        "login": section.get("username") or "guest",
        "password": str(section.get("password") or "guest"),
        "virtualhost": section.get("virtual_host") or section.get("vhost") or "/",
        "queue": queues[0] if isinstance(queues, list) else str(queues),
        "exchange": section.get("exchange_name") or DEFAULT_EXCHANGE,
    }


async def write_until_stored(event: Dict[str, Any], outbox: StaffOutbox, open_handoffs: MutableSet[str]) -> None:
    """`handle_event`, retried with a back-off while the database is down (the message stays unacked)."""
    delay = 1.0
    while True:
        try:
            await asyncio.to_thread(handle_event, event, outbox, open_handoffs)
            return
        except Exception as error:
            logger.warning("Outbox unavailable (%s); event of %s kept, retrying in %g s",
                           type(error).__name__, event.get("sender_id"), delay)
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX_S, delay * 2)


async def consume(endpoints_file: Path, deliver: bool = True, stop: Optional[asyncio.Event] = None) -> None:
    """Runs until `stop` is set (or forever)."""
    endpoints = endpoints_config(endpoints_file)
    settings = broker_settings(endpoints)
    outbox = outbox_for(endpoints_file)
    open_handoffs: MutableSet[str] = SharedOpenHandOffs(outbox) if isinstance(outbox, SharedOutbox) else set()
    delivery = asyncio.create_task(outbox.deliver_forever(staff_notifier_from_env)) if deliver else None
    connection = await connect(settings)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        exchange = await channel.declare_exchange(settings["exchange"], type=aio_pika.ExchangeType.FANOUT)
        queue = await channel.declare_queue(settings["queue"], durable=True)
        await queue.bind(exchange, "")

        in_order = asyncio.Lock()  # one event at a time, in the queue's order (a hand-off opens before its messages)
        handling: Set[asyncio.Task] = set()  # aio_pika runs each delivery in a task of its own

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                handling.add(task)
            try:
                async with in_order:
                    try:
                        event = json.loads(message.body)
                    except ValueError:
                        logger.error("Dropping a broker message that is not JSON (%d bytes)", len(message.body))
                        await message.reject(requeue=False)
                        return
                    if concerns_hand_offs(event):  # the rest is acknowledged without a database round trip
                        await write_until_stored(event, outbox, open_handoffs)
                    await message.ack()
            finally:
                handling.discard(task)

        tag = await queue.consume(on_message, no_ack=False)
        logger.info("Consuming Rasa events from queue %s", settings["queue"])
        await (stop or asyncio.Event()).wait()
        await queue.cancel(tag)
        await drain(handling, DRAIN_S)
    finally:
        if delivery is not None:
            delivery.cancel()
            await asyncio.gather(delivery, return_exceptions=True)
        await connection.close()


async def drain(handling: Set[asyncio.Task], timeout: float) -> None:
    """Waits (up to `timeout`) for the deliveries already being handled: the prefetched ones wait for
    the in-order lock, and cancelling them at exit made aio_pika log each as an error. A delivery still
    unhandled then stays unacknowledged, and RabbitMQ delivers it again to the next consumer."""
    if handling:
        _, pending = await asyncio.wait(set(handling), timeout=timeout)
        if pending:
            logger.warning("%d broker messages not handled at stop; RabbitMQ delivers them again", len(pending))


async def connect(settings: Dict[str, Any]) -> aio_pika.abc.AbstractRobustConnection:
    """A robust connection (reconnects by itself), waiting for RabbitMQ to answer at start."""
    delay = 1.0
    while True:
        try:
            return await aio_pika.connect_robust(
                settings["url"], host=settings["host"], port=settings["port"], login=settings["login"],
                password=settings["password"], virtualhost=settings["virtualhost"],
            )
        except Exception as error:
            logger.warning("RabbitMQ not reachable (%s); retrying in %g s", type(error).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX_S, delay * 2)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.staff.consumer", description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=Path, required=True, help="the endpoints file of the cluster")
    parser.add_argument("--no-deliver", dest="deliver", action="store_false",
                        help="only queue mirrored messages; the action servers deliver the outbox")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(consume_until_signalled(args.endpoints, args.deliver))


async def consume_until_signalled(endpoints_file: Path, deliver: bool) -> None:
    """`consume` until SIGTERM or SIGINT: the message being written is finished, the rest stays queued."""
    stop = asyncio.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signal_number, stop.set)
    await consume(endpoints_file, deliver, stop)


if __name__ == "__main__":
    main()
