"""A turn that could not be stored is never answered with silence.

When the conversation database cannot be reached, Rasa's processing of a message raises
`TrackerStoreUnavailable` (bot/stores/tracker_store.py, bot/rasa_patches.py) and nothing of the
turn is stored. The REST channel answers 503 so that its client sends the message again
(bot/channels/rest.py). The widget (socket.io) and the staff room (Matrix) have no status code: their
`on_new_message` is wrapped here so that the sender is told, on the same output channel, that the
message was not processed and should be sent again.
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from rasa.core.channels.channel import UserMessage

from bot.replies import reply
from bot.stores.tracker_store import TrackerStoreUnavailable

logger = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]
REPLY_KEY = "store_unavailable"


def told_when_unavailable(on_new_message: OnNewMessage) -> OnNewMessage:
    """`on_new_message`, which tells the sender to send the message again when the turn could not
    be stored (any other error is raised as before)."""

    async def handle(message: UserMessage) -> Any:
        try:
            return await on_new_message(message)
        except TrackerStoreUnavailable:  # logged by the store, without the text
            logger.warning("A %s message was not processed (database unreachable); the sender is told.", message.input_channel)
            await message.output_channel.send_text_message(message.sender_id, reply(REPLY_KEY))
            return None

    return handle
