"""Mirrors a visitor's messages to the staff channel while a hand-off is open.

An event broker (endpoints.yml `event_broker`), so it sees every conversation whatever its channel:
the slot `handoff_active` opens and closes a hand-off (set by action_hand_off / action_escalate,
cleared by the staff command `!klaar`), and each visitor message in between is posted to staff.
Which hand-offs are open is kept in memory: after a restart of the Rasa server, open hand-offs
are no longer mirrored until they are opened again.

`mirror_text` is the decision itself; in a cluster the broker is RabbitMQ and the staff consumer
(bot/staff/consumer.py) applies the same decision to the events it reads there.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, MutableSet, Optional, Set, Text

from rasa.core.brokers.broker import EventBroker
from rasa.utils.endpoints import EndpointConfig

from bot.contract import HANDOFF_SLOT
from bot.replies import reply
from bot.staff.notifiers import StaffNotifier, staff_notifier_from_env

logger = logging.getLogger(__name__)


def concerns_hand_offs(event: Dict[Text, Any]) -> bool:
    """Whether `mirror_text` may act on the event (the hand-off slot or a visitor's message): the
    other events (actions, bot messages, other slots: most of a turn's) need no look-up at all."""
    kind = event.get("event")
    return kind == "user" or (kind == "slot" and event.get("name") == HANDOFF_SLOT)


def mirror_text(event: Dict[Text, Any], open_handoffs: MutableSet[str]) -> Optional[str]:
    """Follows one Rasa event (as a broker gets it: the event's dict with `sender_id`): the slot
    `handoff_active` opens or closes the conversation's hand-off in `open_handoffs`; a visitor's
    message during an open hand-off returns the text staff get. Otherwise None."""
    sender = str(event.get("sender_id"))
    if event.get("event") == "slot" and event.get("name") == HANDOFF_SLOT:
        (open_handoffs.add if event.get("value") else open_handoffs.discard)(sender)
    elif event.get("event") == "user" and sender in open_handoffs:
        return reply("hand_off_mirror", conversation_id=sender, text=event.get("text") or "")
    return None


class HandOffMirror(EventBroker):
    def __init__(self, notifier: Optional[StaffNotifier]) -> None:
        self.notifier = notifier
        self.open: Set[str] = set()
        self._tasks: Set[asyncio.Task] = set()

    @classmethod
    async def from_endpoint_config(cls, broker_config: EndpointConfig, event_loop: Optional[asyncio.AbstractEventLoop] = None) -> "HandOffMirror":
        return cls(staff_notifier_from_env())

    def publish(self, event: Dict[Text, Any]) -> None:
        text = mirror_text(event, self.open)
        if text is not None and self.notifier is not None:
            task = asyncio.get_running_loop().create_task(self._post(text))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post(self, text: str) -> None:
        try:
            await self.notifier.post(text)  # type: ignore[union-attr]
        except Exception as error:  # a staff channel that is down must not break the conversation
            logger.error(f"Could not mirror a message to the staff channel: {error}")

    def is_ready(self) -> bool:
        return True

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
