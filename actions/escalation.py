"""Escalation to professional help (../shared/spec/escalation.md): the referral comes first."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot import clock
from bot.contract import (
    ESCALATION,
    ESCALATION_LEVEL_SLOT,
    HANDOFF_SLOT,
    REPORT_WARNING_SIGN,
    WARNING_SIGNS_SLOT,
    earlier_warning_signs,
    intent_ranking,
    original_intent_name,
    search_hits,
    warning_signs,
)
from bot.answers import clarification, sign_question_item
from bot.knowledge_base import KnowledgeBase, current_knowledge_base
from bot.levels import NONE, escalates, is_urgent, level_rank, max_level
from bot.referral import decide_escalation, escalation_metadata, referral_text
from bot.replies import article_answer, reply
from bot.staff.handoff import NoticeStatus, contact_time, hand_off_notice, is_staff, queue_notice

def question_intents(parse_data: Dict[str, Any]) -> List[str]:
    """What else the message asked: the classifier's intent before the override, then its ranking."""
    ranking = [entry.get("name") for entry in intent_ranking(parse_data)]
    names = [original_intent_name(parse_data), *ranking[:2]]
    return [name for name in names if name and name != REPORT_WARNING_SIGN]


def asked_item(kb: KnowledgeBase, parse_data: Dict[str, Any]) -> Optional[Any]:
    """The article item the rest of the message asked about, if any."""
    return next((kb.item(name) for name in question_intents(parse_data) if kb.item(name) is not None), None)


class ActionEscalate(Action):
    """Sends the referral for the highest level of the conversation's warning signs, first."""

    def name(self) -> Text:
        return "action_escalate"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        parse_data = tracker.latest_message
        question = parse_data.get("text") or ""
        kb = current_knowledge_base()
        item = asked_item(kb, parse_data)
        staff = is_staff(tracker.get_latest_input_channel())
        if staff:  # staff quote signs: only this message counts
            escalation = decide_escalation([], [], warning_signs(parse_data))
        else:
            escalation = decide_escalation(
                tracker.get_slot(WARNING_SIGNS_SLOT) or [], earlier_warning_signs(tracker.events), warning_signs(parse_data)
            )
        if escalation is None:  # a guess against what the patterns understood: answer the question
            item = item or sign_question_item(kb, parse_data)  # "wat als ik gevoelloos word?": when to get help
            # nothing asked that the classifier names ("geen koorts en ik kan gewoon plassen. Helpt warmte?"):
            # "Bedoel je…?" with the paragraphs' items, as on low confidence
            dispatcher.utter_message(**(article_answer(kb, item, search_hits(parse_data), question=question) if item else clarification(kb, parse_data)))
            return []
        moment = clock.now()
        text = referral_text(escalation.level, moment, escalation.referral_signs)
        if staff:  # staff are not escalated: they see the policy text for the level, marked as such
            dispatcher.utter_message(text=reply("staff_policy_text", level=escalation.level, text=text))
            if not is_urgent(escalation.level) and item is not None:
                dispatcher.utter_message(**article_answer(kb, item, search_hits(parse_data), question=question))
            return []
        dispatcher.utter_message(text=text, **{ESCALATION: escalation_metadata(escalation, moment)})
        if is_urgent(escalation.level):
            dispatcher.utter_message(text=reply("help_later"))
        elif item is not None:  # the rest of the question, after the referral, which stands alone
            dispatcher.utter_message(**article_answer(kb, item, search_hits(parse_data), safety_net=False, question=question))
        highest = max_level(escalation.level, tracker.get_slot(ESCALATION_LEVEL_SLOT) or NONE)
        events = [SlotSet(WARNING_SIGNS_SLOT, list(escalation.signs)), SlotSet(ESCALATION_LEVEL_SLOT, highest)]
        return events + hand_off(dispatcher, tracker, escalation.level, list(escalation.signs))


def hand_off(dispatcher: CollectingDispatcher, tracker: Tracker, level: str, signs: List[str]) -> List[EventType]:
    """Queue a notice to staff of an escalation at `soon` or higher (again only when the level rises
    during an open hand-off); the referral is already in the dispatcher and goes out first. After an
    urgent referral the visitor is told nothing more: nothing may compete."""
    previous = tracker.get_slot(ESCALATION_LEVEL_SLOT) or NONE
    if not escalates(level) or (tracker.get_slot(HANDOFF_SLOT) and level_rank(level) <= level_rank(previous)):
        return []
    notice = hand_off_notice(
        reply("hand_off_reason_escalation", level=level),
        tracker.sender_id,
        tracker.get_latest_input_channel(),
        level,
        signs,
        tracker.events,
        [message.get("text") or "" for message in dispatcher.messages],
    )
    if queue_notice(tracker.sender_id, notice) is not NoticeStatus.QUEUED:
        return []
    if not is_urgent(level):
        dispatcher.utter_message(text=reply("escalation_staff_notified", contact_time=contact_time()))
    return [SlotSet(HANDOFF_SLOT, True)]
