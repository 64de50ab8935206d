"""Topics the article does not answer, though a question about them sounds close to it
(data/not_covered.yml): another complaint than back pain, reimbursement, what a treatment costs,
orders, aids. The nearest paragraph is no answer to such a question and would read as a claim the
article does not make; the actions say that the article does not cover it. Imports nothing of Rasa."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import FrozenSet, Optional, Sequence, Tuple

import yaml

from bot import paths

WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class UncoveredTopic:
    id: str
    words: FrozenSet[str] = frozenset()
    prefixes: Tuple[str, ...] = ()
    all_of: Tuple[FrozenSet[str], ...] = ()
    unless: FrozenSet[str] = frozenset()
    hint: str = ""

    def asked_in(self, words: FrozenSet[str]) -> bool:
        """Whether a message with these lower-cased words asks about this topic."""
        if words & self.unless:
            return False
        return bool(
            words & self.words
            or any(word.startswith(self.prefixes) for word in words)
            or (self.all_of and all(words & group for group in self.all_of))
        )


@lru_cache(maxsize=None)
def uncovered_topics(path: Path = paths.NOT_COVERED) -> Tuple[UncoveredTopic, ...]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return tuple(
        UncoveredTopic(
            id=topic_id,
            words=frozenset(topic.get("words") or ()),
            prefixes=tuple(topic.get("prefixes") or ()),
            all_of=tuple(frozenset(group) for group in topic.get("all_of") or ()),
            unless=frozenset(topic.get("unless") or ()),
            hint=str(topic.get("hint") or ""),
        )
        for topic_id, topic in (data.get("topics") or {}).items()
    )


def message_words(text: str) -> FrozenSet[str]:
    return frozenset(WORD.findall(text.lower()))


def uncovered_topic(text: str, topics: Optional[Sequence[UncoveredTopic]] = None) -> Optional[UncoveredTopic]:
    """The first topic of data/not_covered.yml that `text` asks about, if any."""
    words = message_words(text)
    return next((topic for topic in (uncovered_topics() if topics is None else topics) if topic.asked_in(words)), None)


def topic_words(topic_id: str) -> FrozenSet[str]:
    """The `words` of one topic (the aids the article sells none of, for the product answers)."""
    return next((topic.words for topic in uncovered_topics() if topic.id == topic_id), frozenset())
