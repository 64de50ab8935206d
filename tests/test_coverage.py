"""bot/coverage.py with data/not_covered.yml: questions about topics the article does not answer."""
from __future__ import annotations

import pytest
import yaml

from bot import paths
from bot.coverage import UncoveredTopic, WordRule, uncovered_topic
from bot.knowledge_base import load_knowledge_base

NEAR_TOPIC_SET = paths.TESTS_DIR / "near_topic_set.yml"
NEAR_TOPIC_SET_2 = paths.TESTS_DIR / "near_topic_set_2.yml"


@pytest.mark.parametrize("text, topic", [
    ("Wat helpt tegen nekpijn?", "other_complaint"),
    ("mijn knie doet pijn na het hardlopen", "other_complaint"),
    ("what helps against a headache?", "other_complaint"),
    ("Wordt fysiotherapie vergoed door mijn zorgverzekering?", "reimbursement"),
    ("valt dit onder mijn eigen risico?", "reimbursement"),
    ("Wat kost een behandeling bij de fysiotherapeut?", "treatment_costs"),
    ("hoeveel moet ik betalen voor het DAVID Spine-programma", "treatment_costs"),
    ("Waar blijft mijn bestelling?", "orders"),
    ("kan ik het shirt retourneren", "orders"),
    ("Welke maat shirt moet ik nemen?", "sizes"),
    ("Helpt kinesiotape bij rugpijn?", "aids"),
    ("welk matras is het beste voor mijn rug", "aids"),
    ("Helpt acupunctuur tegen rugpijn?", "other_treatments"),
    ("moet ik naar een osteopaat of chiropractor?", "other_treatments"),
    ("Ik ben zwanger en heb rugpijn, welke oefeningen mag ik doen?", "pregnancy"),
])
def test_a_question_about_a_topic_the_article_does_not_cover_is_recognised(text, topic):
    found = uncovered_topic(text, load_knowledge_base().words())
    assert found is not None and found.id == topic


@pytest.mark.parametrize("text", [
    "Welke oefeningen helpen bij rugpijn?",
    "ik heb pijn in mijn nek en mijn onderrug, wat kan ik doen?",  # the back too: the article's subject
    "krijg ik bij de fysio een plan op maat?",  # "op maat" is no size
    "ik ben bezorgd over mijn rugpijn",  # worried, not delivered
    "Helpt warmte tegen de pijn?",  # the article says it does
    "Wat kost het zitkussen?",  # the article gives the products' prices
    "Wat is fysiotherapie?",
    "Heeft de fysiotherapeut ook ervaring met nekklachten?",  # the reviewer's description says so
    "Wat doet het shirt voor mijn schouders en houding?",  # posture: the article's subject
    "Mijn pijn straalt uit tot onder mijn knie, verder niks. Wat kan ik doen?",  # radiating back pain
    "",
])
def test_questions_the_article_answers_are_not_taken_for_one(text):
    assert uncovered_topic(text, load_knowledge_base().words()) is None


def test_a_topic_applies_by_whole_words_prefixes_or_one_word_of_each_group_unless_a_word_keeps_it_in_scope():
    topic = UncoveredTopic("t", WordRule(words=frozenset({"nek"}), prefixes=("vergoed",),
                                         all_of=(frozenset({"kost"}), frozenset({"sessie"})), unless=frozenset({"rug"})))
    assert uncovered_topic("mijn nek", topics=[topic]) is topic
    assert uncovered_topic("nekken", topics=[topic]) is None  # whole words only
    assert uncovered_topic("wordt het vergoed?", topics=[topic]) is topic  # vergoed, vergoeding, vergoedt
    assert uncovered_topic("wat kost een sessie", topics=[topic]) is topic
    assert uncovered_topic("wat kost het", topics=[topic]) is None
    assert uncovered_topic("mijn nek en mijn rug", topics=[topic]) is None
    # words the article uses do not count: it says something about them
    assert uncovered_topic("mijn nek", {"nek"}, [topic]) is None
    assert uncovered_topic("wat kost een sessie", {"sessie"}, [topic]) is topic  # "kost": still not covered
    assert uncovered_topic("wat kost een sessie", {"kost", "sessie"}, [topic]) is None


def test_a_topic_the_edited_article_covers_is_answered_again():
    """An article that gains a section on sleeping with back pain, naming the mattress and the knees
    (tests/test_article_driven.py's fixture does so), covers them: no "not in the article"."""
    kb = load_knowledge_base()
    assert uncovered_topic("Welke matras is goed als je rugpijn hebt?", kb.words()).id == "aids"
    assert uncovered_topic("Welke matras is goed als je rugpijn hebt?", {*kb.words(), "matras"}) is None
    assert uncovered_topic("Moet ik een kussen tussen mijn knieën leggen?", {*kb.words(), "knieën"}) is None


# Two held-out sets, each written from the article alone by a helper who saw neither the bot nor its
# data (README "Accuracy", footnote 5), never edited. Measured, unanswerable recognised of 40: the first
# 15 when written, 19 after the topics other_treatments and pregnancy (added from a QA round, after
# that set had been read); the second (committed before it was measured) 11 before those two topics,
# 16 after. Answerable caught: 0 of 40 in both, always.
@pytest.mark.parametrize("held_out, min_recognised", [(NEAR_TOPIC_SET, 19), (NEAR_TOPIC_SET_2, 16)],
                         ids=["first", "second"])
def test_on_a_held_out_set_no_answerable_question_is_caught_and_some_unanswerable_ones_are(held_out, min_recognised):
    data = yaml.safe_load(held_out.read_text(encoding="utf-8"))
    assert len(data["answerable"]) == len(data["unanswerable"]) == 40
    known = load_knowledge_base().words()
    caught = [text for text in data["answerable"] if uncovered_topic(text, known) is not None]
    assert caught == []
    recognised = [text for text in data["unanswerable"] if uncovered_topic(text, known) is not None]
    assert len(recognised) >= min_recognised
