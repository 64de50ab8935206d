"""The review queue: visitor messages the assistant may have missed, grouped by meaning, each group
with the article item nearest by meaning; staff accept (the message becomes a training example of
that item), re-label (another item) or dismiss, and a decided message leaves the queue.

A visitor message is in the queue when, in the stored conversation (bot/staff/report.py reads it):

* the assistant fell back on it (`fallback`) or asked "Bedoel je…?" (`clarified`);
* its intent's confidence is below LOW_CONFIDENCE (`low_confidence`);
* the visitor's next message in the conversation means nearly the same (cosine of the e5 query
  vectors at least REPHRASE_SIMILARITY, `rephrased`): the answer did not help.

Escalated and handed-off messages are reviewed on the conversation page instead. Texts are as the
tracker store keeps them: redacted, and gone with their conversation (retention, erasure). The
queue is grouped by average-linkage clustering (scipy) of the same vectors, at GROUP_SIMILARITY.

Decisions are rows of a small table, `staff_review_decisions`, in the conversations' own database
(SQLite or PostgreSQL, the tracker store of endpoints.yml): one deployment, one place, and a test
stack's temporary database holds its own. A row holds the event's row id, the conversation id, the
decision and the item, never the text; rows whose event is gone (purged, erased) are deleted when
the queue is read.

An accepted text is redacted once more (bot/privacy/redaction.py) and refused when it still holds a
placeholder such as `[e-mail]`; it is appended to its item's list in REVIEWED_EXAMPLES (default
data/article/reviewed_examples.yml: item id → questions, like data/article/examples.yml), which
`make build` folds into the items' training questions for the next `make train`
(bot/knowledge_base/rasa_files.py; an item that left the article takes its questions with it).

Imports nothing of Rasa and nothing of bot/web.
"""
from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np
import sqlalchemy as sa
import yaml
from scipy.cluster.hierarchy import fcluster, linkage

from bot import paths
from bot.knowledge_base import KnowledgeBase
from bot.privacy.redaction import load_rules, redact_text
from bot.privacy.retention import SQLConversationStore, sql_url
from bot.staff.report import (CLARIFIED, ESCALATED, EVENTS, FALLBACK, HANDED_OFF, Turn, conversation_events,
                              turns_of)

LOW_CONFIDENCE = 0.6  # an intent confidence below this sends the message to the queue
REPHRASE_SIMILARITY = 0.93  # the next message this close (cosine) is the same question again
GROUP_SIMILARITY = 0.91  # messages in one group are this close on average (cosine)
EXAMPLES_PER_ITEM = 40  # training examples per item that make its vector (with its heading)

LOW_CONFIDENCE_REASON, REPHRASED = "low_confidence", "rephrased"
REASONS = (FALLBACK, CLARIFIED, LOW_CONFIDENCE_REASON, REPHRASED)
NOT_REVIEWED = (ESCALATED, HANDED_OFF)  # reviewed on the conversation page

ACCEPTED, RELABELLED, DISMISSED = "accepted", "relabelled", "dismissed"
DECISIONS = (ACCEPTED, RELABELLED, DISMISSED)

REVIEWED_EXAMPLES_VARIABLE = "REVIEWED_EXAMPLES"
DEFAULT_REVIEWED_EXAMPLES = paths.REVIEWED_EXAMPLES
REVIEWED_HEADER = (
    "# Visitors' questions that staff accepted on the staff page (/staff/review), by article item id.\n"
    "# Written by bot/staff/review.py; `make build` adds them to the items' training questions.\n"
)
# Rasa reads `[text](entity)` and `[text]{...}` in an example as an entity annotation
ENTITY_MARKUP = re.compile(r"\[[^\]]*\]\s*[({]")

Encoder = Callable[[Sequence[str]], np.ndarray]

DECISIONS_TABLE = sa.Table(
    "staff_review_decisions",
    sa.MetaData(),
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sender_id", sa.String(255), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("item", sa.String(255)),
    sa.Column("decided_at", sa.Float, nullable=False),
)


class ReviewError(ValueError):
    """A decision that cannot be taken; `key` names its Dutch text in bot/replies.yml."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


def reviewed_examples_path(environ: Optional[Mapping[str, str]] = None) -> Path:
    environ = os.environ if environ is None else environ
    return paths.absolute(environ.get(REVIEWED_EXAMPLES_VARIABLE) or DEFAULT_REVIEWED_EXAMPLES)


# -- vectors -------------------------------------------------------------------------------------
class CachedEncoder:
    """An encoder that remembers the vectors of the texts it has seen (the queue is read again and
    again; its texts rarely change). At most `limit` texts are kept."""

    def __init__(self, encode: Encoder, limit: int = 50_000) -> None:
        self._encode = encode
        self._vectors: Dict[str, np.ndarray] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(text for text in texts if text not in self._vectors))
            if missing:
                if len(self._vectors) + len(missing) > self._limit:
                    self._vectors.clear()
                self._vectors.update(zip(missing, self._encode(missing)))
            vectors = [self._vectors[text] for text in texts]
        return np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, 0), dtype=np.float32)


def _normalised(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def nlu_examples(nlu_dir: Path = paths.NLU_DATA_DIR) -> Dict[str, List[str]]:
    """The training examples of every intent in `nlu_dir/*.yml` (Rasa NLU YAML), per intent."""
    examples: Dict[str, List[str]] = {}
    for path in sorted(nlu_dir.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for block in data.get("nlu") or []:
            if isinstance(block, dict) and block.get("intent"):
                examples.setdefault(str(block["intent"]), []).extend(_example_lines(block.get("examples") or ""))
    return examples


def _example_lines(examples: str) -> List[str]:
    return [line.strip()[2:].strip() for line in examples.splitlines() if line.strip().startswith("- ")]


@dataclass(frozen=True)
class ItemVectors:
    """One normalised vector per article item: the mean of the vectors of its title (button title) and its examples."""

    item_ids: Tuple[str, ...]
    matrix: np.ndarray  # [items, dim]

    @classmethod
    def build(cls, kb: KnowledgeBase, encode: Encoder, examples: Mapping[str, Sequence[str]]) -> ItemVectors:
        ids, rows = [], []
        for item in kb.items:
            texts = [item.button_title, *list(examples.get(item.id, ()))[:EXAMPLES_PER_ITEM]]
            ids.append(item.id)
            rows.append(_normalised(encode(texts)).mean(axis=0))
        return cls(tuple(ids), _normalised(np.vstack(rows)))

    def nearest(self, vector: np.ndarray) -> Tuple[str, float]:
        """The item nearest to `vector` (normalised) and its cosine."""
        scores = self.matrix @ vector
        best = int(np.argmax(scores))
        return self.item_ids[best], float(scores[best])


# -- the queue -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    turn: Turn
    reasons: Tuple[str, ...]


@dataclass(frozen=True)
class Group:
    """Messages that mean about the same, and the item nearest to their mean."""

    candidates: Tuple[Candidate, ...]
    suggestion: str
    similarity: float  # cosine of the suggestion to the group's mean

    @property
    def latest(self) -> float:
        return max(candidate.turn.timestamp for candidate in self.candidates)


def _plain_reasons(turn: Turn, low_confidence: float) -> List[str]:
    reasons = [turn.outcome] if turn.outcome in (FALLBACK, CLARIFIED) else []
    if turn.confidence is not None and turn.confidence < low_confidence and turn.outcome not in NOT_REVIEWED:
        reasons.append(LOW_CONFIDENCE_REASON)
    return reasons


def candidates(turns: Iterable[Turn], encode: Encoder, decided: Set[int] = frozenset(),
               low_confidence: float = LOW_CONFIDENCE, rephrase: float = REPHRASE_SIMILARITY) -> List[Candidate]:
    """The undecided visitor messages that belong in the queue, with why, in the order given."""
    open_turns = [turn for turn in turns if turn.event_id not in decided and turn.outcome not in NOT_REVIEWED]
    followed = [turn for turn in open_turns if turn.next_text]
    rephrased: Set[int] = set()
    if followed:
        vectors = _normalised(encode([turn.text for turn in followed]))
        following = _normalised(encode([str(turn.next_text) for turn in followed]))
        similarity = np.einsum("ij,ij->i", vectors, following)
        rephrased = {turn.event_id for turn, score in zip(followed, similarity) if score >= rephrase}
    queue = []
    for turn in open_turns:
        reasons = _plain_reasons(turn, low_confidence) + ([REPHRASED] if turn.event_id in rephrased else [])
        if reasons:
            queue.append(Candidate(turn, tuple(reasons)))
    return queue


def cluster(vectors: np.ndarray, similarity: float = GROUP_SIMILARITY) -> List[int]:
    """A group label per row of `vectors`: average-linkage clusters at cosine distance 1 - similarity."""
    if len(vectors) == 0:
        return []
    if len(vectors) == 1:
        return [1]
    tree = linkage(_normalised(vectors).astype(np.float64), method="average", metric="cosine")
    return [int(label) for label in fcluster(tree, t=1.0 - similarity, criterion="distance")]


def group(queue: Sequence[Candidate], encode: Encoder, items: ItemVectors,
          similarity: float = GROUP_SIMILARITY) -> List[Group]:
    """The queue in groups of the same meaning, the largest first (then the most recent)."""
    if not queue:
        return []
    vectors = _normalised(encode([candidate.turn.text for candidate in queue]))
    members: Dict[int, List[int]] = {}
    for index, label in enumerate(cluster(vectors, similarity)):
        members.setdefault(label, []).append(index)
    groups = []
    for indices in members.values():
        mean = _normalised(vectors[indices].mean(axis=0))
        item, score = items.nearest(mean)
        ordered = sorted((queue[i] for i in indices), key=lambda candidate: -candidate.turn.timestamp)
        groups.append(Group(tuple(ordered), item, score))
    return sorted(groups, key=lambda g: (-len(g.candidates), -g.latest))


# -- decisions -----------------------------------------------------------------------------------
class DecisionStore:
    """The decisions, in the table `staff_review_decisions` of the conversations' database."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        if str(config.get("type") or "").strip().lower() == "redis":
            raise ValueError("the review queue needs a SQL tracker store, not Redis")
        self.config = dict(config)
        self._store = SQLConversationStore(sql_url(config))

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> DecisionStore:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def _ready(self, connection: sa.engine.Connection) -> bool:
        return sa.inspect(connection).has_table(DECISIONS_TABLE.name)

    def decided(self) -> Set[int]:
        """The event ids already decided; first deletes the decisions whose event is gone."""
        if self._store._absent():
            return set()
        with self._store.engine.begin() as connection:
            if not self._ready(connection) or not self._store._has_events(connection):
                return set()
            stored = sa.select(EVENTS.c.id)
            connection.execute(DECISIONS_TABLE.delete().where(DECISIONS_TABLE.c.event_id.not_in(stored)))
            return {int(row) for row in connection.execute(sa.select(DECISIONS_TABLE.c.event_id)).scalars()}

    def record(self, turn: Turn, decision: str, item: Optional[str], now: Optional[float] = None) -> None:
        with self._store.engine.begin() as connection:
            DECISIONS_TABLE.create(connection, checkfirst=True)
            connection.execute(DECISIONS_TABLE.delete().where(DECISIONS_TABLE.c.event_id == turn.event_id))
            connection.execute(DECISIONS_TABLE.insert().values(
                event_id=turn.event_id, sender_id=turn.sender_id, decision=decision, item=item,
                decided_at=time.time() if now is None else now))

    def stored_turn(self, event_id: int) -> Optional[Turn]:
        """The visitor message of this event row, classified as in the queue, or None."""
        if self._store._absent():
            return None
        with self._store.engine.connect() as connection:
            if not self._store._has_events(connection):
                return None
            sender = connection.execute(
                sa.select(EVENTS.c.sender_id).where(EVENTS.c.id == event_id, EVENTS.c.type_name == "user")
            ).scalar()
        if sender is None:
            return None
        turns = turns_of({sender: conversation_events(self.config, sender)}, 0.0, float("inf"))
        return next((turn for turn in turns if turn.event_id == event_id), None)


# -- the examples file ---------------------------------------------------------------------------
def placeholders() -> Tuple[str, ...]:
    return tuple(dict.fromkeys(rule.placeholder for rule in load_rules()))


def example_text(text: str) -> str:
    """The text as a training example: one line, redacted; ReviewError when it holds personal data
    (a placeholder) or cannot be one example."""
    line = " ".join(redact_text(text).split())
    found = [placeholder for placeholder in placeholders() if placeholder in line]
    if found:
        raise ReviewError("staff_review_refused_personal_data", placeholders=", ".join(found))
    if not line or line.startswith("/") or ENTITY_MARKUP.search(line):
        raise ReviewError("staff_review_refused_text")
    return line


def read_examples(path: Path) -> Dict[str, List[str]]:
    """The items and their accepted questions, in file order (empty when missing)."""
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(item): [str(text) for text in texts or []] for item, texts in data.items()}


def render_examples(blocks: Mapping[str, Sequence[str]]) -> str:
    """The header, then `item: [questions]` per item."""
    body = yaml.safe_dump({item: list(texts) for item, texts in blocks.items()}, allow_unicode=True, sort_keys=False, width=1000)
    return REVIEWED_HEADER + (body if blocks else "{}\n")


_FILE_LOCK = threading.Lock()


def append_example(path: Path, intent: str, text: str) -> bool:
    """Add `text` to the block of `intent` in `path` (created when missing), unless the block already
    holds it (any case). Written atomically. True when added."""
    with _FILE_LOCK:
        blocks = read_examples(path)
        examples = blocks.setdefault(intent, [])
        if text.casefold() in {example.casefold() for example in examples}:
            return False
        examples.append(text)
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        draft.write_text(render_examples(blocks), encoding="utf-8")
        os.replace(draft, path)
        return True


def decide(store: DecisionStore, event_id: int, decision: str, item: Optional[str], item_ids: Iterable[str],
           examples: Path) -> Turn:
    """Take a staff decision on a queued message: `accepted`/`relabelled` append it as an example of
    `item` (an article item) to `examples`; `dismissed` only records it. ReviewError otherwise."""
    if decision not in DECISIONS:
        raise ReviewError("staff_review_gone")
    turn = store.stored_turn(event_id)
    if turn is None or event_id in store.decided():
        raise ReviewError("staff_review_gone")
    if decision == DISMISSED:
        store.record(turn, decision, None)
        return turn
    if item not in set(item_ids):
        raise ReviewError("staff_review_refused_item", item=item or "?")
    append_example(examples, str(item), example_text(turn.text))
    store.record(turn, decision, item)
    return turn
