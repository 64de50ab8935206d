"""Dev-set accuracy through the full stack: the item the answer cites must be an accepted one."""
from __future__ import annotations

import json

from bot.devtools.evaluation import answered_item, load_dev_set, load_second_dev_set, score_cases, score_dev_set
from bot.knowledge_base import load_knowledge_base
from conftest import ARTIFACTS, Conversation

MIN_ARTICLE_ACCURACY = 0.93
MIN_OTHER_ACCURACY = 0.90


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


# The second dev set (130 questions, 30 follow-up conversations; article-only author, never edited):
# floors just under what the assistant scores now (README "Accuracy"); the goal is 97 %.
MIN_SECOND_SET_QUESTIONS = 0.86  # 115/130 measured with data/not_covered.yml (109 before); 3 below for seed noise
MIN_SECOND_SET_CONVERSATIONS = 0.80


def test_second_dev_set_through_rest(stack):
    kb = load_knowledge_base()
    cases = load_second_dev_set()
    assert len(cases) >= 150 and sum(case.kind != "question" for case in cases) >= 30

    def predict(turns):
        conversation = Conversation(stack.rest_url)
        for turn in turns:
            conversation.say(turn)
        return answered_item(stack.tracker(conversation.sender), kb)

    score = score_cases(cases, predict)
    by_kind = score["by_kind"]
    question_accuracy = by_kind["question"][0] / by_kind["question"][1]
    follow_ups = [v for k, v in by_kind.items() if k != "question"]
    follow_up_accuracy = sum(c for c, _ in follow_ups) / sum(t for _, t in follow_ups)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "dev_set_2_report.json").write_text(json.dumps(score, ensure_ascii=False, indent=2), "utf-8")
    print(f"\nsecond dev set: {score['correct']}/{score['total']} = {score['accuracy']:.1%}; "
          + ", ".join(f"{kind} {c}/{t}" for kind, (c, t) in by_kind.items()))
    assert question_accuracy >= MIN_SECOND_SET_QUESTIONS, score["errors"]
    assert follow_up_accuracy >= MIN_SECOND_SET_CONVERSATIONS, score["errors"]
