"""The referral never depends on the action server (../shared/spec/escalation.md, behaviour 9).

Rasa 3.6 waits up to 300 s for a custom action and, when the action server is down or fails, logs
the error and says nothing. In the Rasa server this wraps every remote action call:

- it is bounded by ACTION_TIMEOUT_S (default 5 s);
- when `action_escalate` fails or runs out of time, the Rasa server sends the referral of the
  detected level itself (the same rule and text as the action: bot/referral.py), records the level
  and signs in the slots and marks the audit metadata `"fallback": true`;
- when `action_remind_referral` fails, the Rasa server says the reminder of an urgent referral of
  this session itself (or nothing), so a greeting never gets an apology in front of it;
- any other action that fails gets a short apology instead of silence.

Applied by bot/rasa_patches.py in every Rasa server that loads this project's components.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Callable, List

from rasa.core.actions.action import ActionExecutionRejection, RemoteAction
from rasa.shared.core.events import BotUttered, Event, SlotSet

from bot import clock
from bot.answers import TurnContext, referral_reminder
from bot.contract import (
    ESCALATION, ESCALATION_LEVEL_SLOT, WARNING_SIGNS_SLOT, earlier_warning_signs, session_referral_levels, warning_signs,
)
from bot.levels import NONE, is_urgent, max_level
from bot.referral import LEARNED_LEVEL, Escalation, decide_escalation, escalation_metadata, referral_text
from bot.replies import reply
from bot.staff.handoff import is_staff

logger = logging.getLogger(__name__)

ESCALATE_ACTION = "action_escalate"
REMIND_ACTION = "action_remind_referral"
ACTION_TIMEOUT_S = float(os.environ.get("ACTION_TIMEOUT_S", 5.0))


def fallback_referral(tracker: Any) -> List[Event]:
    """The events of the referral the escalation action would have sent (a DialogueStateTracker)."""
    events = [event.as_dict() for event in tracker.events]
    escalation = decide_escalation(
        tracker.get_slot(WARNING_SIGNS_SLOT) or [], earlier_warning_signs(events), warning_signs(tracker.latest_message.parse_data)
    )
    if escalation is None:  # the action would have answered the question: when unsure, refer anyway
        escalation = Escalation(LEARNED_LEVEL, tuple(tracker.get_slot(WARNING_SIGNS_SLOT) or []), (), ())
    moment = clock.now()
    metadata = {ESCALATION: escalation_metadata(escalation, moment, fallback=True)}
    replies: List[Event] = [BotUttered(referral_text(escalation.level, moment, escalation.referral_signs), metadata=metadata)]
    if is_urgent(escalation.level):
        replies.append(BotUttered(reply("help_later")))
    highest = max_level(escalation.level, tracker.get_slot(ESCALATION_LEVEL_SLOT) or NONE)
    return replies + [SlotSet(WARNING_SIGNS_SLOT, list(escalation.signs)), SlotSet(ESCALATION_LEVEL_SLOT, highest)]


def fallback_reminder(tracker: Any) -> List[Event]:
    """The reminder the reminder action would have sent (a DialogueStateTracker): nothing unless this
    session referred at an urgent level."""
    events = [event.as_dict() for event in tracker.events]
    context = TurnContext(staff=is_staff(tracker.get_latest_input_channel()),
                          referred=max_level(NONE, *session_referral_levels(events)))
    return [BotUttered(message["text"]) for message in referral_reminder(context)]


def guarded(run: Callable[..., Any]) -> Callable[..., Any]:
    """`RemoteAction.run` bounded in time, with the referral (or an apology) when it fails."""

    async def run_guarded(self: RemoteAction, output_channel: Any, nlg: Any, tracker: Any, domain: Any) -> List[Event]:
        try:
            return await asyncio.wait_for(run(self, output_channel, nlg, tracker, domain), ACTION_TIMEOUT_S)
        except ActionExecutionRejection:
            raise
        except Exception as error:  # down, refused, failed or too slow
            logger.error("Action %s failed for conversation %s (%s); answering without the action server",
                         self.name(), tracker.sender_id, type(error).__name__)
            if self.name() == ESCALATE_ACTION:
                return fallback_referral(tracker)
            if self.name() == REMIND_ACTION:
                return fallback_reminder(tracker)
            return [BotUttered(reply("action_unavailable"))]

    return run_guarded
