"""Dev-set accuracy through the full stack: the item the answer cites must be an accepted one."""
from __future__ import annotations

import json

from bot.devtools.evaluation import answered_item, load_dev_set, score_dev_set
from bot.knowledge_base import load_knowledge_base
from conftest import ARTIFACTS, Conversation

MIN_ARTICLE_ACCURACY = 0.90
MIN_OTHER_ACCURACY = 0.80


def test_dev_set_top1_through_rest(stack):
    kb = load_knowledge_base()
    questions = load_dev_set()
    assert len(questions) >= 120

    def predict(text: str):
        conversation = Conversation(stack.rest_url)
        conversation.say(text)
        return answered_item(stack.tracker(conversation.sender))

    score = score_dev_set(kb, questions, predict)
    report = {
        "article_accuracy": round(score.article_accuracy, 4),
        "article": [score.article_correct, score.article_total],
        "other_accuracy": round(score.other_accuracy, 4),
        "other": [score.other_correct, score.other_total],
        "errors": score.errors,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "dev_set_report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), "utf-8")
    print(f"\ndev set: article {score.article_correct}/{score.article_total} = {score.article_accuracy:.1%}, "
          f"other {score.other_correct}/{score.other_total} = {score.other_accuracy:.1%}")
    assert score.article_accuracy >= MIN_ARTICLE_ACCURACY, score.errors
    assert score.other_accuracy >= MIN_OTHER_ACCURACY, score.errors
