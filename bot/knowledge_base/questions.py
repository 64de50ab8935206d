"""Split a message that asks two or more questions into its questions (rules in questions.yml).
Imports nothing of Rasa."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import FrozenSet, List

import yaml

QUESTION_SETTINGS = Path(__file__).with_name("questions.yml")
AFTER_QUESTION_MARK = re.compile(r"(?<=\?)\s+(?=\S)")
WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class QuestionRules:
    min_words: int
    max_questions: int
    coordinators: tuple
    question_words: FrozenSet[str]

    @property
    def coordinator_split(self) -> re.Pattern:
        """Before a coordinator followed by a question word: the coordinator is dropped."""
        coordinators = "|".join(sorted((re.escape(c) for c in self.coordinators), key=len, reverse=True))
        words = "|".join(sorted((re.escape(w) for w in self.question_words), key=len, reverse=True))
        return re.compile(rf"[\s,]+(?:{coordinators})\s+(?=(?:{words})\b)", re.IGNORECASE)


@lru_cache(maxsize=None)
def question_rules(path: Path = QUESTION_SETTINGS) -> QuestionRules:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return QuestionRules(
        min_words=int(data["min_words"]),
        max_questions=int(data["max_questions"]),
        coordinators=tuple(data["coordinators"]),
        question_words=frozenset(word.lower() for word in data["question_words"]),
    )


def is_question(part: str, rules: QuestionRules) -> bool:
    words = WORD.findall(part.lower())
    return len(words) >= rules.min_words and (part.rstrip().endswith("?") or words[0] in rules.question_words)


def split_questions(text: str, rules: QuestionRules | None = None) -> List[str]:
    """The questions `text` asks, in order, when it asks two or more (at most `max_questions`);
    [] when it is one question or not only questions."""
    rules = rules or question_rules()
    parts = [
        piece.strip(" ,")
        for sentence in AFTER_QUESTION_MARK.split(text.strip())
        for piece in rules.coordinator_split.split(sentence)
    ]
    parts = [part for part in parts if part]
    if not 2 <= len(parts) <= rules.max_questions or not all(is_question(part, rules) for part in parts):
        return []
    return parts
