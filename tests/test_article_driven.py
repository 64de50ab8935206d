"""The article drives the bot (issue 18): Rasa's files for the items come from the article, and an
item without written questions is still found and cited. The fixture article is the real one with
one extra section; the stack test answers from it with the trained model, no retraining."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot import paths
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
