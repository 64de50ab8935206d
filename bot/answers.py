"""The messages of one answering turn, shared by the answering actions: an article answer with at
most one product line, several questions answered one by one, that the article does not cover a
topic (bot/coverage.py), and the suggested next questions.
Each message is the keyword arguments of one `dispatcher.utter_message`. Imports nothing of Rasa."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence

from bot.contract import (
    ESCALATION_LEVEL_SLOT, PRODUCT, PRODUCTS_MENTIONED_SLOT, SUGGESTIONS, answered_items, intent_ranking, search_hits,
    session_referral_levels, warning_signs,
)
from bot.coverage import asks_about_signs_in_general, named_item_kind, sign_questions, uncovered_topic
from bot.knowledge_base import Item, KnowledgeBase
from bot.knowledge_base.suggestions import suggested_items
from bot.levels import NONE, escalates, is_urgent, max_level
from bot.products import contextual_product, product_line, product_settings, products_named
from bot.replies import article_answer, reply
from bot.staff.handoff import is_staff

# A question of a several-question message is answered from its best paragraph's item only when
# the paragraph is at least this close (cosine; the clarification's floor, MIN_SEARCH_SCORE below).
MIN_QUESTION_SCORE = 0.84
# "Bedoel je…?" offers at most this many items: the classifier's guesses of at least
# MIN_INTENT_CONFIDENCE, then the items of paragraphs of at least MIN_SEARCH_SCORE (cosine).
MAX_OPTIONS = 3
MIN_INTENT_CONFIDENCE = 0.10
MIN_SEARCH_SCORE = 0.84
# The classifier's item answers the question when one of its paragraphs scores within this much of
# the question's best (cosine). A margin, not a rank: neighbouring sections score within hundredths of
# each other, so a rank cut-off (formerly the best 3) turned on differences of 0.0001.
QUESTION_MARGIN = 0.01


@dataclass(frozen=True)
class TurnContext:
    """What the conversation says about this turn: no products and no suggestions once it
    escalated or when staff write; the products already presented; the items already answered;
    the highest level this session referred to before this turn."""

    escalated: bool = False
    staff: bool = False
    products_mentioned: Sequence[str] = ()
    answered: Sequence[str] = ()
    referred: str = NONE

    @property
    def offers(self) -> bool:
        return not self.escalated and not self.staff


def referral_reminder(context: TurnContext) -> List[Dict[str, Any]]:
    """The line that opens every later answer of a session that referred urgently ("bel nu je
    huisarts" must not scroll away under answers about exercises); none to staff, none otherwise.
    A new session (the visitor comes back later) is not reminded: "nu" would no longer be true."""
    if context.staff or not is_urgent(context.referred):
        return []
    return [{"text": reply(f"referral_reminder_{context.referred}")}]


@dataclass
class TurnMessages:
    messages: List[Dict[str, Any]] = field(default_factory=list)
    items: List[str] = field(default_factory=list)  # the items answered, in order
    products: List[str] = field(default_factory=list)  # the products presented, in order

    def extend(self, other: "TurnMessages") -> None:
        self.messages += other.messages
        self.items += [item for item in other.items if item not in self.items]
        self.products += [product for product in other.products if product not in self.products]


def answer_item(
    kb: KnowledgeBase,
    item: Item,
    text: str,
    hits: Sequence[Dict[str, Any]],
    context: TurnContext,
    paragraphs: Optional[Sequence[int]] = None,
) -> TurnMessages:
    """The article answer for `item`, and one "Uit onze winkel" line when a product fits `text`.
    After a referral in the conversation, no safety net ("na 3 à 4 weken … huisarts"): it would
    contradict the referral."""
    turn = TurnMessages([article_answer(kb, item, hits, paragraphs, safety_net=not context.escalated, question=text)], [item.id])
    if not context.offers:
        return turn
    settings = product_settings()
    product = contextual_product(text, item.id, kb.products, settings, context.products_mentioned)
    if product is not None:
        turn.messages.append({"text": product_line(product, settings, "product_mention"), PRODUCT: product.id})
        turn.products.append(product.id)
    return turn


def present_products(kb: KnowledgeBase, product_ids: Sequence[str], settings: Optional[Dict[str, Any]] = None) -> TurnMessages:
    """One line per product (what it is, its price, the discount)."""
    settings = settings or product_settings()
    products = [product for product in kb.products if product.id in product_ids]
    return TurnMessages([{"text": product_line(p, settings, "product"), PRODUCT: p.id} for p in products], [], [p.id for p in products])


def question_item(kb: KnowledgeBase, question: Dict[str, Any], intent_item: Optional[str], used: Sequence[str]) -> Optional[Item]:
    """The item that answers one question of several: the metadata or the sources when the question
    names them (data/item_words.yml: the paragraph search does not index them), else the classifier's
    item when one of its paragraphs is about as close as the question's best, else the best
    paragraph's item when it is close enough."""
    kind = named_item_kind(question["text"])
    named = next((item for item in kb.items if kind and item.kind == kind and item.id not in used), None)
    if named is not None:
        return named
    hits = [hit for hit in question.get("hits") or [] if kb.item(hit.get("item", ""))]
    best_score = max((hit.get("score", 0) for hit in hits), default=0)
    candidates = [hit["item"] for hit in hits if hit.get("score", 0) >= best_score - QUESTION_MARGIN]
    if intent_item in candidates and intent_item not in used:
        return kb.item(intent_item)
    best = next((hit for hit in hits if hit["item"] not in used), None)
    return kb.item(best["item"]) if best and best.get("score", 0) >= MIN_QUESTION_SCORE else None


def answer_questions(
    kb: KnowledgeBase, questions: Sequence[Dict[str, Any]], intent_item: Optional[str], context: TurnContext
) -> TurnMessages:
    """Each question of a several-question message answered on its own, in the order asked: that
    the article does not cover its topic (data/not_covered.yml), else the products it names, else
    its article item, else that the article has no answer to it."""
    turn = TurnMessages()
    settings = product_settings()
    for question in questions:
        topic = uncovered_topic(question["text"], kb.words())
        if topic is not None:
            turn.messages.append({"text": reply("question_not_covered", question=question["text"], hint=topic.hint).strip()})
            continue
        named = products_named(question["text"], kb.products, settings) if context.offers else []
        if named:
            turn.extend(present_products(kb, [p.id for p in named]))
            continue
        item = question_item(kb, question, intent_item, turn.items)
        if item is None:
            turn.messages.append({"text": reply("question_not_in_article", question=question["text"])})
            continue
        mentioned = [*context.products_mentioned, *turn.products]
        turn.extend(answer_item(kb, item, question["text"], question.get("hits") or [], replace(context, products_mentioned=mentioned)))
    return turn


def not_covered_message(kb: KnowledgeBase, text: str) -> Optional[Dict[str, Any]]:
    """The message that the article does not cover what `text` asks about (data/not_covered.yml), if so."""
    topic = uncovered_topic(text, kb.words())
    return None if topic is None else {"text": reply("not_covered", hint=topic.hint).strip()}


def mentions_signs_not_present(parse_data: Dict[str, Any]) -> bool:
    """Whether the warning-sign detector found a sign above level none only as hypothetical or in a
    general question ("wat als ik ooit gevoelloos word?")."""
    hypothetical = warning_signs(parse_data).get("hypothetical") or []
    return any(isinstance(sign, dict) and escalates(sign.get("level") or NONE) for sign in hypothetical)


def sign_question_item(kb: KnowledgeBase, parse_data: Dict[str, Any], detected: bool = True) -> Optional[Item]:
    """The article item that says when to see a professional (data/sign_questions.yml), for a
    question about warning signs: one that names them as such ("welke alarmsignalen zijn er?") or,
    with `detected`, one where the detector found signs that are not the writer's present ones."""
    text = parse_data.get("text") or ""
    if asks_about_signs_in_general(text) or (detected and mentions_signs_not_present(parse_data)):
        return kb.item(sign_questions().item)
    return None


def suggestions(kb: KnowledgeBase, answered_now: Sequence[str], context: TurnContext) -> Optional[Dict[str, Any]]:
    """"Misschien wil je ook weten:" with buttons to related items, or None (nothing to offer,
    an escalated conversation, staff)."""
    if not context.offers or not answered_now:
        return None
    answered = [*context.answered, *answered_now]
    offered = suggested_items(kb, answered_now[-1], answered)
    if not offered:
        return None
    buttons = [{"title": kb.item(item_id).button_title, "payload": f"/{item_id}"} for item_id in offered]
    return {"text": reply("suggestions"), "buttons": buttons, SUGGESTIONS: offered}


def turn_context(tracker: Any) -> TurnContext:
    """The context of the latest turn from a rasa-sdk `Tracker` (its slots, channel and events)."""
    return TurnContext(
        escalated=escalates(tracker.get_slot(ESCALATION_LEVEL_SLOT) or NONE),
        staff=is_staff(tracker.get_latest_input_channel()),
        products_mentioned=tuple(tracker.get_slot(PRODUCTS_MENTIONED_SLOT) or ()),
        answered=tuple(answered_items(list(tracker.events))),
        referred=max_level(NONE, *session_referral_levels(list(tracker.events))),
    )


def candidate_items(ranking: List[Dict[str, Any]], hits: List[Dict[str, Any]], known: List[str]) -> List[str]:
    """Article items worth offering: the classifier's best guesses, then the best paragraphs' items."""
    candidates: List[str] = []
    guesses = [entry["name"] for entry in ranking if entry.get("confidence", 0) >= MIN_INTENT_CONFIDENCE]
    guesses += [hit["item"] for hit in hits if hit.get("score", 0) >= MIN_SEARCH_SCORE]
    for name in guesses:
        if name in known and name not in candidates:
            candidates.append(name)
    return candidates[:MAX_OPTIONS]


def clarification(kb: KnowledgeBase, parse_data: Dict[str, Any]) -> Dict[str, Any]:
    """"Bedoel je…?" with the likely items as buttons, or what the assistant can answer when none is likely."""
    options = candidate_items(intent_ranking(parse_data), search_hits(parse_data), kb.item_ids)
    if not options:
        return {"text": reply("fallback")}
    buttons = [{"title": kb.item(item_id).button_title, "payload": f"/{item_id}"} for item_id in options]
    return {"text": reply("clarify"), "buttons": buttons}
