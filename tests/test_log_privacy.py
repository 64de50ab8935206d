"""No visitor text in Rasa's structured logs (bot/privacy/log_privacy.py), checked on the log line
Rasa's own RabbitMQ broker writes when the broker refuses an event, against the machine's RabbitMQ."""
from __future__ import annotations

import asyncio
import json
import logging
import uuid

import aio_pika
import pytest
import structlog
from rasa.core.brokers.pika import PikaEventBroker
from rasa.shared.core.events import UserUttered
from rasa.utils.log_utils import configure_structlog

import bot.components  # noqa: F401  (applies the patches, as when Rasa loads the model)
from bot.privacy.log_privacy import withheld, withhold_visitor_text

SECRET = "mijn linkerbeen is sinds gisteren gevoelloos en ik heet Jansen"


def test_only_event_names_times_and_lengths_remain():
    event = UserUttered(SECRET, {"intent": {"name": "x"}, "text": SECRET}, timestamp=12.5).as_dict()
    assert withheld(event) == {"event": "user", "timestamp": 12.5}
    assert withheld([event, {"event": "bot", "text": "hoi"}]) == [{"event": "user", "timestamp": 12.5}, {"event": "bot"}]
    assert withheld(SECRET) == f"<{len(SECRET)} characters withheld>"
    logged = withhold_visitor_text(None, "error", {"event": "x", "rasa_event": event, "text": SECRET, "host": "h"})
    assert SECRET not in json.dumps(logged) and logged["host"] == "h" and logged["event"] == "x"


@pytest.fixture
def rasa_structlog():
    """structlog configured as Rasa's command line does (then the patches), restored afterwards."""
    before = structlog.get_config()
    configure_structlog(logging.DEBUG)
    bot.components.rasa_patches.apply()
    yield
    structlog.configure(**before)


async def test_a_refused_event_is_logged_without_the_visitors_words(rasa_structlog, caplog):
    name = f"test_log_privacy_{uuid.uuid4().hex[:8]}"
    broker = PikaEventBroker("localhost", "guest", "guest", queues=[name], exchange_name=name,
                             raise_on_failure=False, should_keep_unpublished_messages=False)
    await broker.connect()
    try:
        await broker._connection.close()  # RabbitMQ is gone for this broker: the publish fails
        with caplog.at_level(logging.DEBUG):
            broker.publish(UserUttered(SECRET, {"text": SECRET}).as_dict())
            await asyncio.gather(*broker._background_tasks)
        failed = [record.getMessage() for record in caplog.records if "pika.events.publish.failed" in record.getMessage()]
        assert failed, caplog.text
        assert SECRET not in caplog.text and "gevoelloos" not in caplog.text
        assert '"event": "user"' in failed[0] or "'event': 'user'" in failed[0]
    finally:
        connection = await aio_pika.connect("amqp://guest:guest@localhost:5672/")
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(name)
            await channel.exchange_delete(name)
