"""What a question asks about, by its words, where the classifier's nearest item is the wrong answer
(the rules are data):
- topics the article does not answer, though a question about them sounds close to it
  (data/not_covered.yml): another complaint than back pain, reimbursement, what a treatment costs,
  orders, aids. The nearest paragraph is no answer and would read as a claim the article does not
  make; the actions say that the article does not cover it.
- questions about warning signs that are not the writer's own present complaint
  (data/sign_questions.yml): "welke alarmsignalen zijn er?", "wat als ik gevoelloos word?". They are
  answered with the article item that says when to see a professional. (Present signs escalate:
  bot/escalation/.)
- words that name the article's metadata or sources in one question of several
  (data/item_words.yml), which the paragraph search cannot find;
- questions for a number, a frequency or a duration ("hoe vaak?"), and whether a text states one
  (data/quantity_questions.yml): a follow-up asking one of a paragraph that names none is not
  answered with that paragraph again.
Imports nothing of Rasa."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import AbstractSet, Any, Dict, FrozenSet, Mapping, Optional, Sequence, Tuple

import re

import yaml

from bot import paths
from bot.products import words_of


@dataclass(frozen=True)
class WordRule:
    """`words` whole, `prefixes` at the start of a word, or one word of each `all_of` group; never
    when a word of `unless` is there too."""

    words: FrozenSet[str] = frozenset()
    prefixes: Tuple[str, ...] = ()
    all_of: Tuple[FrozenSet[str], ...] = ()
    unless: FrozenSet[str] = frozenset()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "WordRule":
        return cls(
            words=frozenset(data.get("words") or ()),
            prefixes=tuple(data.get("prefixes") or ()),
            all_of=tuple(frozenset(group) for group in data.get("all_of") or ()),
            unless=frozenset(data.get("unless") or ()),
        )

    def matches(self, words: AbstractSet[str], known: AbstractSet[str] = frozenset()) -> bool:
        """Whether a message with these lower-cased words matches. A match on `known` words only
        does not count (for an all_of match: when each group's word is known): the article names them."""
        if words & self.unless:
            return False
        named = (words & self.words) | {word for word in words if self.prefixes and word.startswith(self.prefixes)}
        if named and not named & known:
            return True
        groups = [words & group for group in self.all_of]
        return bool(groups) and all(groups) and not all(group & known for group in groups)


@dataclass(frozen=True)
class UncoveredTopic:
    id: str
    rule: WordRule
    hint: str = ""


@lru_cache(maxsize=None)
def uncovered_topics(path: Path = paths.NOT_COVERED) -> Tuple[UncoveredTopic, ...]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return tuple(
        UncoveredTopic(topic_id, WordRule.from_dict(topic), str(topic.get("hint") or ""))
        for topic_id, topic in (data.get("topics") or {}).items()
    )


def uncovered_topic(
    text: str, known: AbstractSet[str] = frozenset(), topics: Optional[Sequence[UncoveredTopic]] = None
) -> Optional[UncoveredTopic]:
    """The first topic of data/not_covered.yml that `text` asks about, if any. `known`: the words the
    article uses (KnowledgeBase.words): a topic the article has since come to cover (a section on
    sleeping with back pain that names the mattress) no longer counts as not covered."""
    words = words_of(text)
    return next((topic for topic in (uncovered_topics() if topics is None else topics) if topic.rule.matches(words, known)), None)


def topic_words(topic_id: str) -> FrozenSet[str]:
    """The `words` of one topic (the aids the article sells none of, for the product answers)."""
    return next((topic.rule.words for topic in uncovered_topics() if topic.id == topic_id), frozenset())


@dataclass(frozen=True)
class SignQuestions:
    item: str  # the article item that says when to see a professional
    rule: WordRule  # words that ask about warning signs in general


@lru_cache(maxsize=None)
def sign_questions(path: Path = paths.SIGN_QUESTIONS) -> SignQuestions:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return SignQuestions(str(data["item"]), WordRule.from_dict(data))


def asks_about_signs_in_general(text: str) -> bool:
    """Whether `text` names warning signs as such ("welke alarmsignalen zijn er?")."""
    return sign_questions().rule.matches(words_of(text))


@lru_cache(maxsize=None)
def item_kind_words(path: Path = paths.ITEM_WORDS) -> Dict[str, WordRule]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return {kind: WordRule.from_dict(rule) for kind, rule in (data or {}).items()}


def named_item_kind(text: str) -> Optional[str]:
    """The item kind (`about`, `sources`) whose words `text` has (data/item_words.yml), if any."""
    words = words_of(text)
    return next((kind for kind, rule in item_kind_words().items() if rule.matches(words)), None)


@dataclass(frozen=True)
class QuantityQuestions:
    rule: WordRule  # words that ask for a number, a frequency or a duration
    quantities: FrozenSet[str]  # words that state one (a digit always does)


@lru_cache(maxsize=None)
def quantity_questions(path: Path = paths.QUANTITY_QUESTIONS) -> QuantityQuestions:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return QuantityQuestions(WordRule.from_dict(data["question"]), frozenset(data["quantities"]))


def asks_for_a_quantity(text: str) -> bool:
    """Whether `text` asks how often, how long or how many ("hoe vaak moet ik dat doen?")."""
    return quantity_questions().rule.matches(words_of(text))


def states_a_quantity(texts: Sequence[str]) -> bool:
    """Whether any of `texts` names a number, a period or a frequency."""
    quantities = quantity_questions().quantities
    return any(re.search(r"\d", text) or words_of(text) & quantities for text in texts)
