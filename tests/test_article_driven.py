"""The article drives the bot (issue 18): Rasa's files for the items come from the article, and an
item without written questions is still found and cited. The fixture article is the real one with
one extra section; the stack test answers from it with the trained model, no retraining."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier
from rasa.shared.nlu.training_data.message import Message

from bot import paths
from bot.components.article_item_resolver import resolved_ranking
from bot.knowledge_base import build_knowledge_base, load_article, load_knowledge_base
from bot.knowledge_base.rasa_files import article_rasa_files, written_examples
from bot.stack import running_stack
from conftest import Conversation, citation_of

EXTRA_SECTION = """## Slapen met rugpijn {#section_sleep}

Een goede slaaphouding ontlast de rug. Wie op de zij slaapt, kan een kussen tussen de knieën leggen zodat het bekken recht blijft; wie op de rug slaapt, kan een kussen onder de knieën leggen. Op de buik slapen geeft vaak meer spanning in de onderrug.

Een matras dat te zacht of te hard is, kan de klachten 's ochtends versterken. Een middelharde matras die de natuurlijke kromming van de wervelkolom volgt, is voor de meeste mensen met rugpijn een goede keuze.

"""


def article_with_extra_section(directory: Path) -> Path:
    source = paths.ARTICLE.read_text(encoding="utf-8")
    fixture = re.sub(r"^## Veelgestelde vragen$", lambda m: EXTRA_SECTION + m.group(0), source, count=1, flags=re.M)
    path = directory / "article.md"
    path.write_text(fixture, encoding="utf-8")
    return path


def without_section(directory: Path, item_id: str) -> Path:
    source = paths.ARTICLE.read_text(encoding="utf-8")
    fixture = re.sub(rf"^## [^\n]*{{#{item_id}}}\n.*?(?=^## )", "", source, count=1, flags=re.M | re.S)
    path = directory / "article_without.md"
    path.write_text(fixture, encoding="utf-8")
    return path


def test_committed_domain_lists_the_articles_items():
    """domain.yml's generated block is what `make build` writes for the article as it is."""
    domain = paths.DOMAIN.read_text(encoding="utf-8")
    assert article_rasa_files(load_knowledge_base(), domain, written_examples()).domain == domain


def test_a_new_section_gets_intent_rule_and_questions(tmp_path):
    kb = load_article(article_with_extra_section(tmp_path))
    files = article_rasa_files(kb, paths.DOMAIN.read_text(encoding="utf-8"), written_examples())
    assert "  - section_sleep\n" in files.domain
    assert "- rule: answer section_sleep" in files.rules
    block = files.nlu.split("- intent: section_sleep\n", 1)[1].split("- intent:", 1)[0]
    assert "    - Slapen met rugpijn" in block  # no written questions: its heading
    assert files.unknown_ids == []
    # the written questions still count for the others
    assert "    - wat is rugpijn\n" in files.nlu.split("- intent: article_intro\n", 1)[1].split("- intent:", 1)[0]


def test_a_removed_section_leaves_every_file_and_its_questions_are_named(tmp_path):
    kb = load_article(without_section(tmp_path, "section_therapies"))
    assert kb.item("section_therapies") is None and kb.item("section_selfcare") is not None
    files = article_rasa_files(kb, paths.DOMAIN.read_text(encoding="utf-8"), written_examples())
    assert "section_therapies" not in files.domain.split("# end of article items")[0].split("# article items")[1]
    assert "section_therapies" not in files.rules and "section_therapies" not in files.nlu
    assert files.unknown_ids == ["section_therapies"]


@pytest.fixture(scope="module")
def extra_section_stack(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fixture-article")
    kb_path = directory / "knowledge_base.json"
    build_knowledge_base(article_with_extra_section(directory), kb_path)
    with running_stack(env={paths.KNOWLEDGE_BASE_VARIABLE: str(kb_path)}, log_dir=directory) as stack:
        yield stack


@pytest.mark.parametrize("question", [
    "Welke matras is goed als je rugpijn hebt?",
    "Moet ik een kussen tussen mijn knieën leggen als ik op mijn zij slaap?",
])
def test_an_item_without_written_questions_is_found_and_cited(extra_section_stack, question):
    conversation = Conversation(extra_section_stack.rest_url)
    texts = conversation.texts(question)
    assert citation_of(texts) == "Slapen met rugpijn", texts


def test_the_other_items_are_answered_as_before_with_the_fixture_article(extra_section_stack):
    texts = Conversation(extra_section_stack.rest_url).texts("Wat zijn de beste oefeningen voor rugpijn?")
    assert citation_of(texts) == "Veelgestelde vragen – Wat zijn de beste oefeningen voor rugpijn?"


def test_the_resolved_item_leads_the_ranking_so_the_classifiers_doubt_is_no_ambiguity(tmp_path):
    """DIET torn between two trained items (0.45 / 0.43) while an untrained item's paragraph scores
    0.9: with the classifier's ranking Rasa's FallbackClassifier (this config's thresholds) asks
    "Bedoel je…?"; with the resolver's ranking it keeps the answer."""
    classifier_ranking = [{"name": "section_selfcare", "confidence": 0.45},
                          {"name": "section_treatment_and_selfcare", "confidence": 0.43},
                          {"name": "faq_relieve_yourself", "confidence": 0.12}]
    resolved = {"name": "section_selfcare", "confidence": 0.9}
    ranking = resolved_ranking(resolved, classifier_ranking)
    assert ranking == [resolved, classifier_ranking[1], classifier_ranking[2]]

    fallback = FallbackClassifier.create({**FallbackClassifier.get_default_config(), "threshold": 0.4,
                                          "ambiguity_threshold": 0.05},
                                         LocalModelStorage(tmp_path), Resource("fallback"),
                                         ExecutionContext(GraphSchema({}), "resolver_test"))
    def intent_after_fallback(intent_ranking):
        message = Message(data={"text": "kussen tussen mijn knieën?", "intent": dict(resolved),
                                "intent_ranking": intent_ranking})
        return fallback.process([message])[0].get("intent")["name"]

    assert intent_after_fallback(classifier_ranking) == "nlu_fallback"
    assert intent_after_fallback(ranking) == "section_selfcare"
