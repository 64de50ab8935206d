"""The Rasa NLU component that settles DIET's tie between two article items by the best paragraph."""
from __future__ import annotations

from typing import List, Tuple

import pytest
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.components.paragraph_tie_breaker import ParagraphTieBreaker
from bot.contract import ARTICLE_SEARCH, UNKNOWN_WORDS

FALLBACK = {"name": "nlu_fallback", "confidence": 0.4}


def judged(ranking: List[Tuple[str, float]], best_paragraph: Tuple[str, float], unknown: bool = False) -> Message:
    """A message as the FallbackClassifier leaves an ambiguous one: nlu_fallback first, then DIET's ranking."""
    message = Message(data={TEXT: "Is manuele therapie een goede optie bij rugklachten?"})
    entries = [{"name": name, "confidence": confidence} for name, confidence in ranking]
    message.set(INTENT, dict(FALLBACK), add_to_output=True)
    message.set(INTENT_RANKING_KEY, [dict(FALLBACK), *entries], add_to_output=True)
    item, score = best_paragraph
    message.set(ARTICLE_SEARCH, [{"item": item, "paragraph": 0, "score": score}], add_to_output=True)
    message.set(UNKNOWN_WORDS, unknown, add_to_output=True)
    return message


@pytest.fixture(scope="module")
def breaker() -> ParagraphTieBreaker:
    return ParagraphTieBreaker(ParagraphTieBreaker.get_default_config())


def test_a_tie_between_two_items_goes_to_the_one_whose_paragraph_ranks_first(breaker):
    message = judged([("section_therapies", 0.52), ("section_treatment_and_selfcare", 0.47), ("greet", 0.01)],
                     ("section_treatment_and_selfcare", 0.89))
    [message] = breaker.process([message])
    assert message.get(INTENT) == {"name": "section_treatment_and_selfcare", "confidence": 0.47}
    assert [entry["name"] for entry in message.get(INTENT_RANKING_KEY)] == [
        "section_treatment_and_selfcare", "section_therapies", "greet"]


@pytest.mark.parametrize("ranking, best_paragraph, unknown", [
    ([("section_therapies", 0.52), ("section_treatment_and_selfcare", 0.47)], ("section_selfcare", 0.89), False),  # a third item
    ([("section_therapies", 0.45), ("section_treatment_and_selfcare", 0.30)], ("section_therapies", 0.89), False),  # DIET unsure of both
    ([("section_therapies", 0.52), ("greet", 0.47)], ("section_therapies", 0.89), False),  # a tie with a non-article intent
    ([("section_therapies", 0.52), ("section_treatment_and_selfcare", 0.47)], ("section_therapies", 0.80), False),  # weak paragraph
    ([("section_therapies", 0.52), ("section_treatment_and_selfcare", 0.47)], ("section_therapies", 0.89), True),  # no known word
])
def test_anything_else_is_left_to_the_clarification(breaker, ranking, best_paragraph, unknown):
    [message] = breaker.process([judged(ranking, best_paragraph, unknown)])
    assert message.get(INTENT) == FALLBACK


def test_a_confident_intent_is_never_touched(breaker):
    message = judged([("section_therapies", 0.52), ("section_treatment_and_selfcare", 0.47)], ("section_therapies", 0.89))
    message.set(INTENT, {"name": "faq_best_exercises", "confidence": 0.9}, add_to_output=True)
    [message] = breaker.process([message])
    assert message.get(INTENT) == {"name": "faq_best_exercises", "confidence": 0.9}
