"""Escalation to professional help (../shared/spec/escalation.md): the referral comes first."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import clock
from actions.article import utter_item
from actions.handoff import contact_time, is_staff, notify_staff
from actions.knowledge import knowledge_base, search_hits
from actions.replies import reply
from bot.escalation import LEVELS, combine_level
from bot.staff.handoff import HANDOFF_SLOT

WARNING_SIGNS = "warning_signs"
URGENT_LEVELS = ("urgent_now", "urgent_112")
# A symptom report recognised only by the learned intent: a doctor should look (policy: when
# unsure, the higher level), but it is never urgent on a guess.
LEARNED_SYMPTOM_REPORT = "learned_symptom_report"
LEARNED_LEVEL = "soon"
# Persistent, non-alarming pain: the `soon` reply also says a fysiotherapeut needs no referral.
PERSISTENT_PAIN_SIGNS = frozenset({"no_improvement", "recurrent_pain", "daily_life_limited"})


def escalation_response(level: str, office_hours: bool, signs: List[str] = ()) -> str:
    if level == "urgent_now":
        return "escalate_urgent_now_office" if office_hours else "escalate_urgent_now_after_hours"
    if level == "soon" and signs and PERSISTENT_PAIN_SIGNS.issuperset(signs):
        return "escalate_soon_persistent"
    return f"escalate_{level}"


def escalating_signs(detection: Dict[str, Any]) -> List[str]:
    return [sign["sign_id"] for sign in detection.get("signs", []) if sign.get("level") != "none"]


def question_intents(tracker: Tracker) -> List[str]:
    """What else the message asked: the classifier's intent before the override, then its ranking."""
    original = (tracker.latest_message.get("original_intent") or {}).get("name")
    ranking = [entry.get("name") for entry in tracker.latest_message.get("intent_ranking") or []]
    return [name for name in [original, *ranking[:2]] if name and name != "report_warning_sign"]


def earlier_signs(tracker: Tracker) -> List[str]:
    """Signs of earlier turns: those kept in the slot and those the detector reported on earlier
    messages without escalating (context signs such as age), in the order they came."""
    signs = list(tracker.get_slot("warning_signs") or [])
    user_events = [event for event in tracker.events if event.get("event") == "user"][:-1]
    for event in user_events:
        detection = (event.get("parse_data") or {}).get(WARNING_SIGNS) or {}
        signs += [sign["sign_id"] for sign in detection.get("signs", []) if sign["sign_id"] not in signs]
    return signs


def answer_question(dispatcher: CollectingDispatcher, tracker: Tracker, fallback: bool = True) -> None:
    """Answer what else the message asked about the article, if anything."""
    kb = knowledge_base()
    item = next((kb.item(name) for name in question_intents(tracker) if kb.item(name) is not None), None)
    if item is not None:
        utter_item(dispatcher, kb, item, search_hits(tracker))
    elif fallback:
        dispatcher.utter_message(text=reply("fallback"))


class ActionEscalate(Action):
    """Sends the referral for the highest level of the conversation's warning signs, first."""

    def name(self) -> Text:
        return "action_escalate"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        detection = tracker.latest_message.get(WARNING_SIGNS) or {}
        new_signs = [sign["sign_id"] for sign in detection.get("signs", [])]
        if detection.get("level", "none") == "none":  # the learned intent alone: no sign named
            if detection.get("negated") or detection.get("hypothetical"):
                # the patterns understood the sign as denied or hypothetical: a guess may not overrule
                answer_question(dispatcher, tracker)
                return []
            new_signs.append(LEARNED_SYMPTOM_REPORT)
        staff = is_staff(tracker)
        earlier = [] if staff else earlier_signs(tracker)  # staff quote signs: only this message counts
        signs = earlier + [sign for sign in new_signs if sign not in earlier]
        learned = LEARNED_LEVEL if LEARNED_SYMPTOM_REPORT in new_signs else "none"
        level = max(combine_level(signs), learned, key=LEVELS.index)
        highest = max(level, tracker.get_slot("escalation_level") or "none", key=LEVELS.index)
        events = [SlotSet("warning_signs", signs), SlotSet("escalation_level", highest)]
        moment = clock.now()
        text = reply(escalation_response(level, clock.is_office_hours(moment), escalating_signs(detection)))
        if staff:  # staff are not escalated: they see the policy text for the level, marked as such
            dispatcher.utter_message(text=reply("staff_policy_text", level=level, text=text))
            if level not in URGENT_LEVELS:
                answer_question(dispatcher, tracker, fallback=False)
            return []
        dispatcher.utter_message(
            text=text, escalation={"level": level, "signs": new_signs, "time": moment.isoformat(timespec="minutes")}
        )
        if level in URGENT_LEVELS:
            dispatcher.utter_message(text=reply("help_later"))
        else:
            answer_question(dispatcher, tracker, fallback=False)
        return events + await hand_off(dispatcher, tracker, level, signs)


async def hand_off(dispatcher: CollectingDispatcher, tracker: Tracker, level: str, signs: List[str]) -> List[EventType]:
    """Notify staff of an escalation at `soon` or higher (again only when the level rises during an
    open hand-off). After an urgent referral the visitor is told nothing more: nothing may compete."""
    previous = tracker.get_slot("escalation_level") or "none"
    if level == "none" or (tracker.get_slot(HANDOFF_SLOT) and LEVELS.index(level) <= LEVELS.index(previous)):
        return []
    if not await notify_staff(dispatcher, tracker, reply("hand_off_reason_escalation", level=level), level, signs):
        return []
    if level not in URGENT_LEVELS:
        dispatcher.utter_message(text=reply("escalation_staff_notified", contact_time=contact_time()))
    return [SlotSet(HANDOFF_SLOT, True)]

