"""Score the assistant on the dev set (tests/nlu_dev_set.yml) by the item its answer cites."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from rasa.shared.nlu.training_data.loading import load_data

from bot import paths
import yaml

from bot.contract import PRODUCT, REPORT_WARNING_SIGN, cited_items, intent_ranking, latest_turn_bot_events, search_hits
from bot.knowledge_base import KnowledgeBase

DEV_SET = paths.TESTS_DIR / "nlu_dev_set.yml"
# The second dev set (issue 18): single questions and follow-up conversations, item `none` when the
# article cannot answer; its own format (see the file).
SECOND_DEV_SET = paths.TESTS_DIR / "nlu_dev_set_2.yml"
NO_ITEM = "none"


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


def answered_item(tracker: Dict, kb: Optional[KnowledgeBase] = None) -> Optional[str]:
    """The item the latest turn's answer cites (its `citation` metadata), or None when it cites
    nothing. With `kb`: a turn that cites nothing but presents a product counts as the section the
    article shows that product in (the second dev set scores product questions so)."""
    bot_events = latest_turn_bot_events(tracker)
    cited = cited_items(bot_events)
    if cited or kb is None:
        return cited[0] if cited else None
    products = [(event.get("metadata") or {}).get(PRODUCT) for event in bot_events]
    product = next((kb.product(product_id) for product_id in products if product_id and kb.product(product_id)), None)
    return product.section if product else None


@dataclass(frozen=True)
class DevCase:
    """One case of the second dev set: the turns sent in one conversation, the item the last reply
    must cite (None: it must cite nothing), the kind (`question`, or a follow-up kind) and language."""

    turns: tuple
    item: Optional[str]
    kind: str
    lang: str


def load_second_dev_set(path: Path = SECOND_DEV_SET) -> List[DevCase]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))

    def item(raw: Dict) -> Optional[str]:
        return None if raw["item"] == NO_ITEM else raw["item"]

    questions = [DevCase((q["text"],), item(q), "question", q.get("lang", "nl")) for q in data["questions"]]
    conversations = [DevCase(tuple(c["turns"]), item(c), c["kind"], c.get("lang", "nl")) for c in data["conversations"]]
    return questions + conversations


def score_cases(cases: Sequence[DevCase], predict: Callable[[Sequence[str]], Optional[str]]) -> Dict:
    """Top-1 accuracy per kind and in all; `predict(turns)` returns the item the last reply cites."""
    by_kind: Dict[str, List[int]] = {}
    errors = []
    for case in cases:
        got = predict(case.turns)
        correct = got == case.item
        by_kind.setdefault(case.kind, [0, 0])
        by_kind[case.kind][0] += correct
        by_kind[case.kind][1] += 1
        if not correct:
            errors.append({"turns": list(case.turns), "expected": case.item, "got": got, "kind": case.kind})
    correct = sum(c for c, _ in by_kind.values())
    total = sum(t for _, t in by_kind.values())
    return {"accuracy": correct / total if total else 0.0, "correct": correct, "total": total, "by_kind": by_kind, "errors": errors}


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
