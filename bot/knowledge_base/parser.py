"""Parse the article source (Markdown with YAML front matter) into a validated KnowledgeBase.

The format is described at the top of `data/article/rugpijn-bewegen.md`. Any deviation raises
`ArticleFormatError` naming the line; nothing is returned for a malformed source.
"""
from __future__ import annotations

import dataclasses
import datetime
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from bot.knowledge_base.model import (
    Item,
    KnowledgeBase,
    Metadata,
    Product,
    Reviewer,
    Source,
)

FAQ_CITATION = "Veelgestelde vragen – {question}"
HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<text>.+?)(?:\s+\{#(?P<id>[a-z][a-z0-9_]*)\})?\s*$")
SOURCE_LINE = re.compile(r"^(?P<number>\d+)\.\s+(?P<text>\S.*)$")
FENCE = re.compile(r"^```\s*(?P<info>\S*)\s*$")
PRODUCT_FIELDS = ("id", "name", "description", "price", "promotion")
MIN_PARAGRAPH_CHARS = 20
METADATA_FIELDS = ("title", "author", "reviewer", "date", "reading_time_minutes")


class ArticleFormatError(ValueError):
    """The article source does not follow the expected structure."""

    def __init__(self, message: str, line: int, path: Optional[Path] = None) -> None:
        where = f"{path}:{line}" if path else f"line {line}"
        super().__init__(f"{where}: {message}")
        self.line = line
        self.path = path


@dataclass
class _Block:
    """A piece of the body: a heading, a paragraph, a fenced block or a thematic break."""

    kind: str  # heading | paragraph | list_item | fence | break
    line: int
    text: str = ""
    level: int = 0
    id: Optional[str] = None
    info: str = ""


@dataclass
class _Section:
    heading: str
    id: Optional[str]
    line: int
    paragraphs: List[str] = field(default_factory=list)
    questions: List[Item] = field(default_factory=list)
    products: List[Product] = field(default_factory=list)
    sources: List[Source] = field(default_factory=list)


def parse_article(text: str, path: Optional[Path] = None) -> KnowledgeBase:
    """The knowledge base of an article source; raises ArticleFormatError if malformed."""
    lines = text.splitlines()
    front_matter, body_start = _split_front_matter(lines, path)
    metadata = _parse_metadata(front_matter, path)
    blocks = _blocks(lines, body_start, path)
    knowledge_base = _assemble(metadata, blocks, path)
    return _annotate(knowledge_base, front_matter, path)


def load_article(path: Path) -> KnowledgeBase:
    return parse_article(Path(path).read_text(encoding="utf-8"), path=Path(path))


def _split_front_matter(lines: List[str], path: Optional[Path]) -> Tuple[Dict[str, Any], int]:
    if not lines or lines[0].strip() != "---":
        raise ArticleFormatError("the file must start with YAML front matter ('---')", 1, path)
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            try:
                data = yaml.safe_load("\n".join(lines[1:index])) or {}
            except yaml.YAMLError as error:
                mark = getattr(error, "problem_mark", None)
                line = mark.line + 2 if mark else 1
                raise ArticleFormatError(f"front matter is not valid YAML: {error}", line, path)
            if not isinstance(data, dict):
                raise ArticleFormatError("front matter must be a mapping", 2, path)
            return data, index + 1
    raise ArticleFormatError("front matter is not closed with '---'", 1, path)


def _parse_metadata(data: Dict[str, Any], path: Optional[Path]) -> Metadata:
    missing = [key for key in METADATA_FIELDS if not data.get(key)]
    if missing:
        raise ArticleFormatError(f"front matter misses {', '.join(missing)}", 2, path)
    reviewer = data["reviewer"]
    if not isinstance(reviewer, dict) or not reviewer.get("name") or not reviewer.get("role"):
        raise ArticleFormatError("front matter 'reviewer' needs a name and a role", 2, path)
    date = data["date"]
    if isinstance(date, str):
        try:
            date = datetime.date.fromisoformat(date)
        except ValueError:
            raise ArticleFormatError(f"date {date!r} is not YYYY-MM-DD", 2, path)
    if not isinstance(date, datetime.date):
        raise ArticleFormatError("date must be YYYY-MM-DD", 2, path)
    minutes = data["reading_time_minutes"]
    if not isinstance(minutes, int) or minutes <= 0:
        raise ArticleFormatError("reading_time_minutes must be a positive whole number", 2, path)
    return Metadata(
        title=str(data["title"]).strip(),
        author=str(data["author"]).strip(),
        reviewer=Reviewer(
            name=str(reviewer["name"]).strip(),
            role=str(reviewer["role"]).strip(),
            profession=str(reviewer.get("profession", "")).strip(),
            bio=" ".join(str(reviewer.get("bio", "")).split()),
        ),
        date=date.isoformat(),
        reading_time_minutes=minutes,
    )


def _blocks(lines: List[str], start: int, path: Optional[Path]) -> List[_Block]:
    """Split the body into blocks, dropping HTML comments; line numbers are 1-based."""
    blocks: List[_Block] = []
    paragraph: List[str] = []
    paragraph_line = 0
    index = start

    def flush() -> None:
        nonlocal paragraph
        if paragraph:
            blocks.append(_Block("paragraph", paragraph_line, " ".join(paragraph)))
            paragraph = []

    while index < len(lines):
        raw = lines[index]
        stripped = raw.strip()
        number = index + 1
        if stripped.startswith("<!--"):
            flush()
            while "-->" not in lines[index]:
                index += 1
                if index == len(lines):
                    raise ArticleFormatError("HTML comment is not closed", number, path)
            index += 1
            continue
        fence = FENCE.match(stripped)
        if fence:
            flush()
            end = index + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            if end == len(lines):
                raise ArticleFormatError("fenced block is not closed with ```", number, path)
            content = "\n".join(lines[index + 1 : end])
            blocks.append(_Block("fence", number, content, info=fence.group("info")))
            index = end + 1
            continue
        heading = HEADING.match(stripped)
        if heading:
            flush()
            blocks.append(
                _Block(
                    "heading",
                    number,
                    heading.group("text").strip(),
                    level=len(heading.group("level")),
                    id=heading.group("id"),
                )
            )
        elif stripped in ("---", "***", "___"):
            flush()
            blocks.append(_Block("break", number))
        elif SOURCE_LINE.match(stripped):
            flush()
            blocks.append(_Block("list_item", number, stripped))
        elif not stripped:
            flush()
        else:
            if not paragraph:
                paragraph_line = number
            paragraph.append(stripped)
        index += 1
    flush()
    return blocks


def _assemble(metadata: Metadata, blocks: List[_Block], path: Optional[Path]) -> KnowledgeBase:
    intro: List[str] = []
    closing: List[str] = []
    sections: List[_Section] = []
    question: Optional[_Block] = None
    answer: List[str] = []
    after_break = False
    intro_line = blocks[0].line if blocks else 1

    def close_question() -> None:
        nonlocal question, answer
        if question is not None:
            if not answer:
                raise ArticleFormatError(f"question {question.text!r} has no answer", question.line, path)
            sections[-1].questions.append(
                Item(
                    id=question.id or "",
                    kind="faq",
                    heading=question.text,
                    citation=FAQ_CITATION.format(question=question.text),
                    paragraphs=tuple(answer),
                    line=question.line,
                )
            )
        question, answer = None, []

    for block in blocks:
        if block.kind == "heading":
            close_question()
            if block.level == 1:
                raise ArticleFormatError("use the front matter 'title', not a '#' heading", block.line, path)
            if block.level == 2:
                after_break = False
                sections.append(_Section(block.text, block.id, block.line))
            elif block.level == 3 and sections:
                if not block.id:
                    raise ArticleFormatError(
                        f"question {block.text!r} needs an id: '### {block.text} {{#faq_...}}'",
                        block.line,
                        path,
                    )
                question = block
            else:
                raise ArticleFormatError(f"unexpected heading level {block.level}", block.line, path)
        elif block.kind == "break":
            close_question()
            if not sections:
                raise ArticleFormatError("'---' before the first section", block.line, path)
            after_break = True
        elif block.kind == "fence":
            if block.info != "product":
                raise ArticleFormatError(f"unknown fenced block {block.info!r}", block.line, path)
            if not sections:
                raise ArticleFormatError("a product must stand in a section", block.line, path)
            sections[-1].products.append(_parse_product(block, sections[-1], path))
        elif block.kind == "list_item":
            if not sections or sections[-1].id != "article_sources":
                raise ArticleFormatError(
                    "numbered lists belong under '## Bronnen {#article_sources}'", block.line, path
                )
            sections[-1].sources.append(_parse_source(block, len(sections[-1].sources), path))
        elif len(block.text) < MIN_PARAGRAPH_CHARS:
            raise ArticleFormatError(
                f"paragraph {block.text!r} is too short to be article text (web-page residue?)",
                block.line,
                path,
            )
        elif after_break:
            closing.append(block.text)
        elif question is not None:
            answer.append(block.text)
        elif not sections:
            intro.append(block.text)
        else:
            sections[-1].paragraphs.append(block.text)
    close_question()

    if not intro:
        raise ArticleFormatError("the article needs an introduction before the first section", intro_line, path)
    items = [
        Item("article_intro", "intro", metadata.title, metadata.title, tuple(intro), intro_line),
        Item("article_about", "about", metadata.title, metadata.title, (), 1),
    ]
    products: List[Product] = []
    sources: List[Source] = []
    for section in sections:
        items.extend(_section_items(section, path))
        products.extend(section.products)
        sources.extend(section.sources)
    if not sources:
        raise ArticleFormatError("the article needs a '## Bronnen {#article_sources}' list", len(blocks), path)
    _check_unique([(item.id, item.line) for item in items], "item id", path)
    _check_unique([(product.id, 0) for product in products], "product id", path)
    return KnowledgeBase(
        metadata=metadata,
        items=tuple(items),
        products=tuple(products),
        sources=tuple(sources),
        closing=tuple(closing),
    )


def _annotate(
    knowledge_base: KnowledgeBase, front_matter: Dict[str, Any], path: Optional[Path]
) -> KnowledgeBase:
    """Apply the front matter's per-item settings (self-care flags, labels)."""
    self_care = front_matter.get("self_care_items") or []
    labels = front_matter.get("labels") or {}
    if not isinstance(self_care, list) or not isinstance(labels, dict):
        raise ArticleFormatError("self_care_items must be a list and labels a mapping", 2, path)
    unknown = sorted((set(self_care) | set(labels)) - set(knowledge_base.item_ids))
    if unknown:
        raise ArticleFormatError(f"front matter names unknown items: {', '.join(unknown)}", 2, path)
    items = tuple(
        dataclasses.replace(
            item, self_care=item.id in self_care, label=str(labels.get(item.id, ""))
        )
        for item in knowledge_base.items
    )
    return dataclasses.replace(knowledge_base, items=items, _by_id={})


def _section_items(section: _Section, path: Optional[Path]) -> List[Item]:
    if section.sources:
        return [Item(section.id or "", "sources", section.heading, section.heading, (), section.line)]
    if section.questions:
        if section.paragraphs:
            raise ArticleFormatError(
                f"text under {section.heading!r} must belong to a '###' question", section.line, path
            )
        return section.questions
    if not section.id:
        raise ArticleFormatError(
            f"section {section.heading!r} needs an id: '## {section.heading} {{#section_...}}'",
            section.line,
            path,
        )
    if not section.paragraphs:
        raise ArticleFormatError(f"section {section.heading!r} has no text", section.line, path)
    return [Item(section.id, "section", section.heading, section.heading, tuple(section.paragraphs), section.line)]


def _parse_product(block: _Block, section: _Section, path: Optional[Path]) -> Product:
    try:
        data = yaml.safe_load(block.text)
    except yaml.YAMLError as error:
        raise ArticleFormatError(f"product block is not valid YAML: {error}", block.line, path)
    if not isinstance(data, dict):
        raise ArticleFormatError("product block must be a YAML mapping", block.line, path)
    missing = [key for key in PRODUCT_FIELDS if data.get(key) in (None, "")]
    if missing:
        raise ArticleFormatError(f"product misses {', '.join(missing)}", block.line, path)
    try:
        price = round(float(data["price"]), 2)
    except (TypeError, ValueError):
        raise ArticleFormatError(f"product price {data['price']!r} is not a number", block.line, path)
    if price <= 0:
        raise ArticleFormatError("product price must be positive", block.line, path)
    return Product(
        id=str(data["id"]),
        name=str(data["name"]).strip(),
        description=str(data["description"]).strip(),
        price=price,
        promotion=str(data["promotion"]).strip(),
        section=section.id or "",
    )


def _parse_source(block: _Block, already: int, path: Optional[Path]) -> Source:
    match = SOURCE_LINE.match(block.text)
    assert match is not None  # list_item blocks match SOURCE_LINE by construction
    number = int(match.group("number"))
    if number != already + 1:
        raise ArticleFormatError(f"source number {number} should be {already + 1}", block.line, path)
    return Source(number, match.group("text").strip())


def _check_unique(pairs: List[Tuple[str, int]], what: str, path: Optional[Path]) -> None:
    seen = set()
    for value, line in pairs:
        if value in seen:
            raise ArticleFormatError(f"duplicate {what} {value!r}", line or 1, path)
        seen.add(value)
