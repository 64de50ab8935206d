"""The staff consumer (bot/staff/consumer.py) stopping against the machine's RabbitMQ: the events
already delivered are handled (each once) before it closes, the rest stay queued, and aio_pika logs
no cancelled delivery as an error."""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import List

import aio_pika
import yaml

from bot.cluster import SharedNames, delete_broker_queues
from bot.staff import consumer

EVENTS = 30


async def declare(channel: aio_pika.abc.AbstractChannel, names: SharedNames) -> aio_pika.abc.AbstractQueue:
    """The exchange and queue as the consumer (and Rasa) declare them."""
    exchange = await channel.declare_exchange(names.exchange, type=aio_pika.ExchangeType.FANOUT)
    queue = await channel.declare_queue(names.queue, durable=True)
    await queue.bind(exchange, "")
    return queue


def test_a_stop_handles_the_delivered_events_and_leaves_the_rest_queued(tmp_path: Path, monkeypatch, caplog):
    names = SharedNames.unique("consumerstop")
    broker = {"type": "pika", "url": "localhost", "port": 5672, "username": "guest", "password": "guest",
              "queues": [names.queue], "exchange_name": names.exchange}
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(yaml.safe_dump({"event_broker": broker}), encoding="utf-8")
    monkeypatch.setenv("STAFF_OUTBOX", str(tmp_path / "outbox.db"))
    handled: List[str] = []

    async def slow_write(event, outbox, open_handoffs) -> None:  # a visitor's message takes a while to store
        await asyncio.sleep(0.05)
        handled.append(event["text"])

    monkeypatch.setattr(consumer, "write_until_stored", slow_write)

    async def scenario() -> int:
        connection = await aio_pika.connect(host="localhost", port=5672, login="guest", password="guest")
        async with connection:
            channel = await connection.channel()
            queue = await declare(channel, names)
            for number in range(EVENTS):
                body = json.dumps({"sender_id": "bezoeker", "event": "user", "text": str(number), "timestamp": number})
                await channel.default_exchange.publish(aio_pika.Message(body.encode()), routing_key=names.queue)
            stop = asyncio.Event()
            consuming = asyncio.create_task(consumer.consume(endpoints, deliver=False, stop=stop))
            while not handled:
                await asyncio.sleep(0.01)
            stop.set()  # while the prefetched deliveries wait for the in-order lock
            await asyncio.wait_for(consuming, timeout=30)
            return int((await queue.declare()).message_count)

    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            left = asyncio.run(scenario())
    finally:
        asyncio.run(delete_broker_queues(broker))
    assert handled == [str(number) for number in range(len(handled))]  # in order, each once
    assert 1 < len(handled) < EVENTS  # the prefetched ones too, not the whole queue
    assert left == EVENTS - len(handled)  # the rest is still queued, none lost
    assert not [record for record in caplog.records if record.name == "asyncio"], caplog.text
