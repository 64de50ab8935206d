"""Low confidence: ask "Bedoel je…?" with up to three of the article's topics, or say what the bot can do."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.answers import not_covered_message, referral_reminder, sign_question_item, turn_context
from bot.contract import intent_ranking, search_hits
from bot.knowledge_base import current_knowledge_base
from bot.replies import article_answer, reply

MAX_OPTIONS = 3
# An intent below this confidence, or a paragraph below this cosine, is not offered as an option.
MIN_INTENT_CONFIDENCE = 0.10
MIN_SEARCH_SCORE = 0.84


def candidate_items(ranking: List[Dict[str, Any]], hits: List[Dict[str, Any]], known: List[str]) -> List[str]:
    """Article items worth offering: the classifier's best guesses, then the best paragraphs' items."""
    candidates: List[str] = []
    guesses = [entry["name"] for entry in ranking if entry.get("confidence", 0) >= MIN_INTENT_CONFIDENCE]
    guesses += [hit["item"] for hit in hits if hit.get("score", 0) >= MIN_SEARCH_SCORE]
    for name in guesses:
        if name in known and name not in candidates:
            candidates.append(name)
    return candidates[:MAX_OPTIONS]


class ActionClarify(Action):
    """Runs on `nlu_fallback`: offers the likely topics as buttons, or explains what it can answer
    (or that the article does not cover the topic asked about, data/not_covered.yml; a question
    about warning signs gets the article's answer to when to see a professional)."""

    def name(self) -> Text:
        return "action_clarify"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        kb = current_knowledge_base()
        context = turn_context(tracker)
        for message in referral_reminder(context):  # an urgent referral of this session first
            dispatcher.utter_message(**message)
        parse_data = tracker.latest_message
        uncovered = not_covered_message(kb, parse_data.get("text") or "")
        if uncovered is not None:  # no topic of the article to offer: it does not cover this
            dispatcher.utter_message(**uncovered)
            return []
        signs_item = sign_question_item(kb, parse_data)
        if signs_item is not None:  # "wat als de pijn 's nachts erger wordt?": when to get help
            dispatcher.utter_message(**article_answer(kb, signs_item, search_hits(parse_data), question=parse_data.get("text") or ""))
            return []
        options = candidate_items(intent_ranking(parse_data), search_hits(parse_data), kb.item_ids)
        if not options:
            dispatcher.utter_message(text=reply("fallback"))
            return []
        buttons = [{"title": kb.item(item_id).button_title, "payload": f"/{item_id}"} for item_id in options]
        dispatcher.utter_message(text=reply("clarify"), buttons=buttons)
        return []
