"""Score the assistant on the dev set (tests/nlu_dev_set.yml) by the item its answer cites."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from rasa.shared.nlu.training_data.loading import load_data

from bot import paths
from bot.contract import REPORT_WARNING_SIGN, cited_items, intent_ranking, latest_turn_bot_events, search_hits
from bot.knowledge_base import KnowledgeBase

DEV_SET = paths.TESTS_DIR / "nlu_dev_set.yml"


@dataclass(frozen=True)
class DevQuestion:
    text: str
    intent: str
    acceptable: tuple

    @property
    def accepted(self) -> tuple:
        return (self.intent, *self.acceptable)


def load_dev_set(path: Path = DEV_SET) -> List[DevQuestion]:
    questions = []
    for message in load_data(str(path)).intent_examples:
        extra = (message.data.get("metadata") or {}).get("example") or {}
        questions.append(DevQuestion(message.get("text"), message.get("intent"), tuple(extra.get("acceptable", []))))
    return questions


def answered_item(tracker: Dict) -> Optional[str]:
    """The item the latest turn's answer cites (its `citation` metadata), or None when it cites nothing."""
    cited = cited_items(latest_turn_bot_events(tracker))
    return cited[0] if cited else None


@dataclass
class DevSetScore:
    article_total: int = 0
    article_correct: int = 0
    other_total: int = 0
    other_correct: int = 0
    errors: List[Dict] = None

    @property
    def article_accuracy(self) -> float:
        return self.article_correct / self.article_total if self.article_total else 0.0

    @property
    def other_accuracy(self) -> float:
        return self.other_correct / self.other_total if self.other_total else 0.0


def score_dev_set(
    kb: KnowledgeBase, questions: Sequence[DevQuestion], predict: Callable[[str], Optional[str]]
) -> DevSetScore:
    """`predict(text)` returns the cited item id (or None); article questions must cite an accepted
    item, the others must cite nothing."""
    score = DevSetScore(errors=[])
    for question in questions:
        predicted = predict(question.text)
        if kb.item(question.intent):
            score.article_total += 1
            correct = predicted in question.accepted
            score.article_correct += correct
        else:
            score.other_total += 1
            correct = predicted is None
            score.other_correct += correct
        if not correct:
            score.errors.append({"text": question.text, "expected": list(question.accepted), "got": predicted})
    return score


def compare_retrieval(parse: Callable[[str], Dict], kb: KnowledgeBase, questions: Sequence[DevQuestion]) -> Dict[str, float]:
    """Top-1 accuracy on the dev set's article questions of the NLU's candidates, from one parse
    per question (`parse(text)` is Rasa's /model/parse result): DIET's best article intent, the
    best knowledge-base paragraph (embedding search alone), and the final intent after the
    fallback and warning-sign layers."""
    hits = {"diet": 0, "embedding_search": 0, "final_intent": 0}
    article = [q for q in questions if kb.item(q.intent)]
    for question in article:
        result = parse(question.text)
        ranking = [r["name"] for r in intent_ranking(result) if r["name"] not in ("nlu_fallback", REPORT_WARNING_SIGN)]
        search = search_hits(result) or [{}]
        hits["diet"] += bool(ranking) and ranking[0] in question.accepted
        hits["embedding_search"] += search[0].get("item") in question.accepted
        hits["final_intent"] += result["intent"]["name"] in question.accepted
    return {name: count / len(article) for name, count in hits.items()}
