"""Answer a follow-up from the item last answered: "vertel meer" (the next paragraphs) and questions
that only make sense with it ("en werkt dat?", "voor wie is dat?")."""
from __future__ import annotations

from typing import Any, Collection, Dict, List, Optional, Sequence, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.answers import (
    MIN_QUESTION_SCORE, TurnContext, TurnMessages, answer_item, not_covered_message, present_products, referral_reminder,
    sign_question_item, suggestions, turn_context,
)
from bot.contract import (
    ASK_MORE,
    PRODUCTS_MENTIONED_SLOT,
    intent_name,
    last_answer_is_product,
    last_citation,
    last_products,
    quoted_paragraphs,
    search_hits,
)
from bot.coverage import asks_for_a_quantity, states_a_quantity
from bot.knowledge_base import Item, KnowledgeBase, current_knowledge_base
from bot.knowledge_base.answers import distinctive_words, next_paragraph_indices, referent_paragraph_indices
from bot.knowledge_base.suggestions import read_on_item
from bot.replies import article_answer, reply

WHOLE_ITEM_KINDS = ("faq", "about", "sources")  # answered whole: a follow-up answers them again
METADATA_KINDS = ("about", "sources")  # answered from the front matter and source list, not paragraphs


def lacks_the_quantity_asked(item: Item, paragraphs: Optional[List[int]], question: str) -> bool:
    """Whether `question` asks how often, how long or how many ("hoe vaak moet ik dat doen?") and
    the paragraphs that would answer it (None: all) name no number, period or frequency."""
    if item.kind in METADATA_KINDS or not asks_for_a_quantity(question):
        return False
    quoted = item.paragraphs if paragraphs is None else [item.paragraphs[index] for index in paragraphs]
    return not states_a_quantity(quoted)


def follow_up_paragraphs(item: Item, more: bool, hits: Sequence[Dict[str, Any]], quoted: Sequence[int],
                         last_quoted: Sequence[int], asked: Collection[str] = ()) -> Optional[List[int]]:
    """The paragraphs a follow-up quotes: None (all of it) for the items answered whole; for "meer"
    the next ones after all `quoted` in this conversation ([] when all were); for a question the
    ones just quoted (`last_quoted`, what "dat" points at) unless it names or matches another one
    clearly better."""
    if item.kind in WHOLE_ITEM_KINDS:
        return None
    if more:
        return next_paragraph_indices(item, quoted)
    return referent_paragraph_indices(item, hits, last_quoted, asked)


def next_item(kb: KnowledgeBase, hits: Sequence[Dict[str, Any]], answered: Sequence[str]) -> Optional[Item]:
    """After "meer" when the item was said in full: the item of the best paragraph that the
    conversation has not answered yet, when it matches as closely as a question of its own."""
    for hit in hits:
        if hit.get("item") not in answered and kb.item(hit.get("item", "")) and hit.get("score", 0) >= MIN_QUESTION_SCORE:
            return kb.item(hit["item"])
    return None


def read_on_after(kb: KnowledgeBase, item: Item, hits: Sequence[Dict[str, Any]], context: TurnContext,
                  events: List[Dict[str, Any]], answered_whole: bool) -> Optional[Tuple[Item, Optional[List[int]]]]:
    """"Meer" when all of `item` was said: the section `read_on` names for it (data/suggestions.yml),
    from its first paragraphs not yet quoted; else, after a section quoted to its end, the best
    matching item not yet answered (its relevant paragraphs: None). None when there is neither: an
    item answered whole is then said again, a section gets "nothing more"."""
    read_on = kb.item(read_on_item(kb, item.id, context.answered) or "")
    if read_on is not None:
        return read_on, next_paragraph_indices(read_on, quoted_paragraphs(events, read_on.id))
    elsewhere = None if answered_whole else next_item(kb, hits, context.answered)
    return (elsewhere, None) if elsewhere is not None else None


class ActionAnswerFollowUp(Action):
    """Runs on `ask_more` and `follow_up`: answers from the item the conversation last answered
    (a question after an answer that presented products: about those products), or asks what the
    question is about when nothing was answered yet; a question about a topic the article does not
    cover ("en wordt dat vergoed?", data/not_covered.yml) is told so, and one about warning signs
    that are not the writer's present ones ("stel dat ik niet meer kan plassen, wat dan?") gets the
    article's answer to when to see a professional."""

    def name(self) -> Text:
        return "action_answer_follow_up"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        kb = current_knowledge_base()
        context = turn_context(tracker)
        for message in referral_reminder(context):  # an urgent referral of this session first
            dispatcher.utter_message(**message)
        parse_data = tracker.latest_message
        more = intent_name(parse_data) == ASK_MORE
        uncovered = None if more else not_covered_message(kb, parse_data.get("text") or "")
        if uncovered is not None:  # "en wordt dat vergoed?": the article does not say
            dispatcher.utter_message(**uncovered)
            return []
        signs_item = sign_question_item(kb, parse_data)  # also on "meer": "stel dat ..., wat dan?" reads as one
        if signs_item is not None:  # "stel dat ik mijn plas niet kan ophouden, wat dan?": when to get help
            dispatcher.utter_message(**article_answer(kb, signs_item, search_hits(parse_data), safety_net=not context.escalated,
                                                      question=parse_data.get("text") or ""))
            return []
        if not more and last_answer_is_product(tracker.events) and context.offers:
            for message in present_products(kb, last_products(tracker.events)).messages:
                dispatcher.utter_message(**message)
            return []
        citation = last_citation(tracker.events)
        item = kb.item(citation["item"]) if citation else None
        if item is None:
            dispatcher.utter_message(text=reply("follow_up_without_context"))
            return []
        paragraphs = follow_up_paragraphs(item, more, search_hits(parse_data), quoted_paragraphs(tracker.events, item.id),
                                          citation.get("paragraphs") or [], distinctive_words(kb, parse_data.get("text") or ""))
        if not more and lacks_the_quantity_asked(item, paragraphs, parse_data.get("text") or ""):
            dispatcher.utter_message(text=reply("no_quantity", heading=item.citation))  # not the same paragraph again
            return []
        read_on = read_on_after(kb, item, search_hits(parse_data), context, tracker.events, paragraphs is None) if more and not paragraphs else None
        if read_on is not None:  # all of this item was said: where the article says more, or another item
            turn = answer_item(kb, read_on[0], parse_data.get("text") or "", search_hits(parse_data), context, read_on[1])
            offer = suggestions(kb, turn.items, context)
        elif paragraphs == []:
            turn = TurnMessages([{"text": reply("nothing_more", heading=item.citation)}], [])
            offer = suggestions(kb, [item.id], context)
        else:
            turn = answer_item(kb, item, parse_data.get("text") or "", search_hits(parse_data), context, paragraphs)
            offer = suggestions(kb, turn.items, context)
        for message in turn.messages:
            dispatcher.utter_message(**message)
        if offer:
            dispatcher.utter_message(**offer)
        if not turn.products:
            return []
        return [SlotSet(PRODUCTS_MENTIONED_SLOT, [*context.products_mentioned, *turn.products])]
