"""Answer a question about the article from the knowledge base, naming the section quoted."""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.knowledge import knowledge_base, latest_intent, metadata_values, search_hits
from actions.products import contextual_product, product_line, product_settings
from actions.handoff import is_staff
from actions.replies import reply
from bot.knowledge_base import Item, KnowledgeBase
from bot.knowledge_base.answers import relevant_paragraphs


def utter_item(dispatcher: CollectingDispatcher, kb: KnowledgeBase, item: Item, hits: List[Dict[str, Any]]) -> None:
    """Send the answer for one knowledge-base item: quoted text, then `Bron: <citation>`."""
    if item.kind == "about":
        dispatcher.utter_message(text=reply("article_about", citation=item.citation, **metadata_values(kb)))
    elif item.kind == "sources":
        sources = "\n".join(f"{source.number}. {source.text}" for source in kb.sources)
        dispatcher.utter_message(text=reply("article_sources", sources=sources, citation=item.citation))
    else:
        name = "article_answer_with_safety_net" if item.self_care else "article_answer"
        answer = "\n".join(relevant_paragraphs(item, hits))
        dispatcher.utter_message(text=reply(name, answer=answer, citation=item.citation))


class ActionAnswerFromArticle(Action):
    """Answers with the paragraph(s) of the article item that the predicted intent names."""

    def name(self) -> Text:
        return "action_answer_from_article"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        kb = knowledge_base()
        item = kb.item(latest_intent(tracker) or "")
        if item is None:
            dispatcher.utter_message(text=reply("fallback"))
            return []
        utter_item(dispatcher, kb, item, search_hits(tracker))
        return mention_product(dispatcher, tracker, kb, item)


def mention_product(dispatcher: CollectingDispatcher, tracker: Tracker, kb: KnowledgeBase, item: Item) -> List[Dict[Text, Any]]:
    """One "Uit onze winkel" line when a product fits; never once a conversation was escalated,
    never to staff."""
    if (tracker.get_slot("escalation_level") or "none") != "none" or is_staff(tracker):
        return []
    mentioned = list(tracker.get_slot("products_mentioned") or [])
    settings = product_settings()
    product = contextual_product(tracker.latest_message.get("text") or "", item.id, kb.products, settings, mentioned)
    if product is None:
        return []
    dispatcher.utter_message(text=product_line(product, settings, "product_mention"), product=product.id)
    return [SlotSet("products_mentioned", mentioned + [product.id])]
