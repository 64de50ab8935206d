"""Ingestion of the article source: the real article, and malformed sources that must fail cleanly."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.knowledge_base import ARTICLE_PATH, ArticleFormatError, build_knowledge_base, parse_article
from bot.knowledge_base.answers import distinctive_words, named_paragraph_indices, relevant_paragraph_indices, relevant_paragraphs

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_495560afdab6fe25.txt"


@pytest.fixture(scope="module")
def article_text() -> str:
    return ARTICLE_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def kb(article_text):
    return parse_article(article_text)


def test_metadata(kb):
    meta = kb.metadata
    assert meta.title == "Rugpijn? Bewegen is de sleutel naar verlichting!"
    assert meta.author == "Het Anodyne-team"
    assert meta.reviewer.name == "Christian Vagn Uhre"
    assert meta.reviewer.role.startswith("Fysiotherapeut")
    assert meta.date == "2026-01-17"
    assert meta.reading_time_minutes == 6


def test_sections_faq_products_sources(kb):
    sections = [item for item in kb.items if item.kind == "section"]
    assert [s.heading for s in sections] == [
        "De rol van beweging bij rugpijn",
        "Actieve beweging versus passieve rust",
        "Combinatie van professionele behandeling en zelfzorg",
        "Verschil tussen acute en chronische rugpijn",
        "Zelfzorgmaatregelen voor rugpijn",
        "Therapeutische invalshoeken",
    ]
    faq = [item for item in kb.items if item.kind == "faq"]
    assert len(faq) == 4
    assert faq[0].citation == "Veelgestelde vragen – Waarom is beweging belangrijk bij rugpijn?"
    assert all(item.paragraphs for item in sections + faq)
    assert [(p.name, p.price) for p in kb.products] == [
        ("Women's Posture Shirt™ Zipper - Nude", 98.10),
        ("Ergonomisch Zitkussen", 69.00),
    ]
    assert all(p.promotion == "Bespaar 37% bij aankoop van 2 producten" for p in kb.products)
    assert [s.number for s in kb.sources] == list(range(1, 16))
    assert kb.sources[12].text.startswith("Thuisarts.")
    assert kb.closing and kb.closing[0].startswith("Door een geïntegreerde aanpak")


def test_web_page_residue_is_gone(kb, article_text):
    intro = kb.item("article_intro")
    assert len(intro.paragraphs) == 2  # the duplicated paragraph appears once
    assert intro.paragraphs[0] != intro.paragraphs[1]
    for residue in ("LÆS MERE", "Källor", "beoordelingen", "Product Image"):
        assert residue not in article_text
    every_paragraph = [p for item in kb.items for p in item.paragraphs]
    assert all(len(p) > 20 for p in every_paragraph)


@pytest.mark.skipif(not SEED.exists(), reason="../shared/seed not present")
def test_every_seed_paragraph_is_kept(kb):
    """Nothing of the article is lost: each prose paragraph of the seed is in the knowledge base."""
    text = " ".join(
        [p for item in kb.items for p in item.paragraphs]
        + [item.heading for item in kb.items]
        + [p.description for p in kb.products]
        + list(kb.closing)
        + [f"{source.number}. {source.text}" for source in kb.sources]
        + [f"{kb.metadata.reviewer.role}. {kb.metadata.reviewer.bio}"]
    )
    seed_paragraphs = [line.strip() for line in SEED.read_text(encoding="utf-8").splitlines()]
    byline = "Door het Anodyne-team | 17. januari 2026 | Leestijd: 6 minuten"  # now metadata
    prose = [line for line in seed_paragraphs if len(line) > 60 and line != byline]
    assert prose
    missing = [line for line in prose if line not in text]
    assert missing == []


def test_build_writes_json_and_nothing_on_error(tmp_path):
    output = tmp_path / "kb.json"
    kb = build_knowledge_base(output=output)
    data = json.loads(output.read_text(encoding="utf-8"))
    assert len(data["items"]) == len(kb.items)
    broken = tmp_path / "broken.md"
    broken.write_text("no front matter\n", encoding="utf-8")
    second = tmp_path / "second.json"
    with pytest.raises(ArticleFormatError):
        build_knowledge_base(article=broken, output=second)
    assert not second.exists()
    assert list(tmp_path.glob("*.tmp")) == []


def _replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def _line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


@pytest.mark.parametrize(
    "old, new, message, fragment",
    [
        ("## Therapeutische invalshoeken {#section_therapies}", "## Therapeutische invalshoeken",
         "needs an id", "## Therapeutische invalshoeken"),
        ("### Wat zijn de beste oefeningen voor rugpijn? {#faq_best_exercises}",
         "### Wat zijn de beste oefeningen voor rugpijn? {#faq_why_movement}",
         "duplicate item id", "### Wat zijn de beste oefeningen"),
        ("price: 69.00", "price: negenenzestig", "is not a number", "```product"),
        ("2. Dorsoo.", "3. Dorsoo.", "source number 3 should be 2", "3. Dorsoo."),
    ],
)
def test_malformed_source_names_the_line(article_text, old, new, message, fragment):
    broken = _replace(article_text, old, new)
    with pytest.raises(ArticleFormatError) as error:
        parse_article(broken)
    assert message in str(error.value)
    if fragment != "```product":
        assert error.value.line == _line_of(broken, fragment)


def test_residue_paragraph_is_refused(article_text):
    broken = _replace(article_text, "## De rol van beweging", "f\n\n## De rol van beweging")
    with pytest.raises(ArticleFormatError) as error:
        parse_article(broken)
    assert "too short" in str(error.value)
    assert error.value.line == broken.splitlines().index("f") + 1


@pytest.mark.parametrize(
    "source, message",
    [
        ("", "front matter"),
        ("---\ntitle: x\n", "not closed"),
        ("---\ntitle: [unclosed\n---\n", "not valid YAML"),
        ("---\ntitle: T\n---\nIntro paragraph that is long enough.\n", "misses author"),
    ],
)
def test_broken_front_matter(source, message):
    with pytest.raises(ArticleFormatError) as error:
        parse_article(source)
    assert message in str(error.value)


def test_unclosed_fence_and_unknown_block(article_text):
    with pytest.raises(ArticleFormatError, match="not closed"):
        parse_article(article_text + "\n```product\nid: x\n")
    with pytest.raises(ArticleFormatError, match="unknown fenced block"):
        parse_article(_replace(article_text, "```product", "```video"))


def test_question_without_answer(article_text):
    broken = _replace(
        article_text,
        "Mobiliteitsoefeningen, specifieke rug- en buikspieroefeningen, en regelmatig wisselen van houding zijn effectief.",
        "",
    )
    with pytest.raises(ArticleFormatError, match="has no answer") as error:
        parse_article(broken)
    assert error.value.line == _line_of(broken, "### Wat zijn de beste oefeningen")


def test_relevant_paragraphs_follow_search(kb):
    section = kb.item("section_acute_vs_chronic")
    hits = [
        {"item": "section_acute_vs_chronic", "paragraph": 1, "score": 0.90},
        {"item": "section_selfcare", "paragraph": 0, "score": 0.89},
        {"item": "section_acute_vs_chronic", "paragraph": 0, "score": 0.80},
    ]
    assert relevant_paragraphs(section, hits) == [section.paragraphs[1]]
    hits[2]["score"] = 0.895
    assert relevant_paragraphs(section, hits) == [section.paragraphs[0], section.paragraphs[1]]
    assert relevant_paragraphs(section, []) == [section.paragraphs[0]]
    faq = kb.item("faq_best_exercises")
    assert relevant_paragraphs(faq, hits) == list(faq.paragraphs)


def test_a_distinctive_word_only_one_paragraph_has_names_that_paragraph(kb):
    therapies = kb.item("section_therapies")
    laser = next(i for i, text in enumerate(therapies.paragraphs) if "lasertherapie" in text)
    assert distinctive_words(kb, "Helpt lasertherapie bij rugpijn?") == {"lasertherapie"}  # "rugpijn" is everywhere
    assert named_paragraph_indices(therapies, distinctive_words(kb, "Helpt lasertherapie bij rugpijn?")) == [laser]
    assert named_paragraph_indices(therapies, distinctive_words(kb, "Wat is het DAVID Spine-programma?")) == [laser]
    assert named_paragraph_indices(therapies, distinctive_words(kb, "welke oefeningen zijn goed bij rugpijn?")) == []  # no distinctive word
    # the named paragraph comes before the search's best one, unless it was quoted already
    hits = [{"item": "section_therapies", "paragraph": 1 - laser, "score": 0.9}]
    assert relevant_paragraph_indices(therapies, hits, asked={"lasertherapie"}) == [laser]
    assert relevant_paragraph_indices(therapies, hits) == [1 - laser]
    assert relevant_paragraph_indices(therapies, hits, exclude=[laser], asked={"lasertherapie"}) == [1 - laser]
    assert named_paragraph_indices(kb.item("faq_best_exercises"), {"buikspieroefeningen"}) == []  # one paragraph


def test_the_answer_helpers_load_no_nlp_library():
    """The staff consumer and the action server import these helpers: spaCy would pull in thinc,
    torch and TensorFlow (14 s and hundreds of MB per process)."""
    import subprocess
    import sys

    code = "import sys, bot.knowledge_base.answers, bot.staff.consumer; print(sorted(m for m in ('spacy', 'torch', 'tensorflow') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
