"""The review queue (bot/staff/review.py) without a browser: which messages enter it and why, the
grouping by meaning and the suggested item (the shipped e5 model), the decisions (stored in the
conversations' database, pruned with their conversation) and the examples file (valid for Rasa's
own NLU reader, merged per intent, personal data refused). Conversations are written by Rasa's
SQL tracker store into a temporary SQLite file, as in tests/test_staff_report.py."""
from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader


from bot import paths
from bot.contract import CITATION, ESCALATION
from bot.embeddings.onnx_model import query_encoder
from bot.knowledge_base import load_knowledge_base
from bot.knowledge_base.rasa_files import article_rasa_files, written_examples
from bot.staff import review
from bot.staff.report import visitor_turns
from bot.stores.tracker_store import PrivateSQLTrackerStore

DOMAIN = Domain.from_yaml("""
version: '3.1'
intents: [faq_best_exercises, nlu_fallback, out_of_scope, report_warning_sign, greet]
""")
T0 = time.time() - 3600.0
WEATHER = ["wat voor weer wordt het morgen", "wordt het morgen mooi weer?", "hoe wordt het weer morgen"]
SHOES = ["welke schoenen moet ik kopen", "welke schoenen zijn het beste om te kopen"]


class Builder:
    def __init__(self) -> None:
        self.events: List[Event] = []
        self.at = T0

    def user(self, text: str, intent: str, confidence: float = 0.95) -> "Builder":
        self.at += 10
        parse = {"intent": {"name": intent, "confidence": confidence}, "entities": [], "text": text}
        self.events.append(UserUttered(text, intent=parse["intent"], parse_data=parse, timestamp=self.at,
                                       input_channel="rest"))
        return self

    def bot(self, text: str = "antwoord", buttons: Optional[List[Dict[str, Any]]] = None, **metadata: Any) -> "Builder":
        self.events.append(BotUttered(text, data={"buttons": buttons} if buttons else {}, metadata=metadata,
                                      timestamp=self.at + 0.2))
        return self

    def clarify(self) -> "Builder":
        self.events.append(ActionExecuted("action_clarify", timestamp=self.at + 0.1))
        return self.bot("Bedoel je…?", buttons=[{"title": "Oefeningen", "payload": "/faq_best_exercises"}])


def cite(item: str) -> Dict[str, Any]:
    return {CITATION: {"item": item, "heading": item}}


def conversations() -> Dict[str, Builder]:
    return {
        # three ways of asking about the weather, each fallen back on: one group
        "weer-1": Builder().user(WEATHER[0], "nlu_fallback").bot("Daar weet ik niets van"),
        "weer-2": Builder().user(WEATHER[1], "out_of_scope").bot("Daar gaat het artikel niet over"),
        "weer-3": Builder().user(WEATHER[2], "nlu_fallback").clarify(),
        # shoes: a low-confidence answer, then the same question again (rephrased) answered confidently
        "schoenen": Builder().user(SHOES[0], "faq_best_exercises", 0.35).bot(**cite("faq_best_exercises"))
        .user(SHOES[1], "faq_best_exercises", 0.9).bot(**cite("faq_best_exercises")),
        # answered with confidence and followed by something else entirely: not in the queue
        "goed": Builder().user("Welke oefeningen helpen tegen rugpijn?", "faq_best_exercises").bot(**cite("faq_best_exercises"))
        .user("hallo", "greet").bot("Hoi"),
        # escalated: reviewed on the conversation page, not in the queue, even with a low confidence
        "alarm": Builder().user("ik kan niet meer plassen", "report_warning_sign", 0.3)
        .bot("Bel je huisarts", **{ESCALATION: {"level": "urgent_now", "signs": ["x"], "time": "nu"}}),
        # personal data the store redacts: the queue shows the placeholder, and accepting it is refused
        "mail": Builder().user("mail mij op jan@example.nl over mijn rug", "nlu_fallback").bot("Dat begrijp ik niet"),
    }


@pytest.fixture(scope="module")
def encoder() -> review.Encoder:
    return review.CachedEncoder(query_encoder(paths.EMBEDDING_MODEL))


@pytest.fixture(scope="module")
def items(encoder) -> review.ItemVectors:
    return review.ItemVectors.build(load_knowledge_base(paths.knowledge_base_path()), encoder, review.nlu_examples())


@pytest.fixture
def config(tmp_path: Path) -> Dict[str, Any]:
    db = tmp_path / "conversations.db"
    store = PrivateSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(db))
    try:
        for sender_id, builder in conversations().items():
            asyncio.run(store.save(DialogueStateTracker.from_events(sender_id, builder.events, slots=DOMAIN.slots)))
    finally:
        store.engine.dispose()
    return {"type": "bot.stores.tracker_store.PrivateSQLTrackerStore", "dialect": "sqlite", "db": str(db)}


def all_turns(config: Dict[str, Any]):
    return visitor_turns(config, 0.0, time.time() + 1)


def queued(config, encoder, decided=frozenset()) -> Dict[str, review.Candidate]:
    return {candidate.turn.text: candidate for candidate in review.candidates(all_turns(config), encoder, decided)}


def test_which_messages_enter_the_queue_and_why(config, encoder) -> None:
    queue = queued(config, encoder)
    assert queue[WEATHER[0]].reasons == ("fallback",)
    assert queue[WEATHER[1]].reasons == ("fallback",)  # out_of_scope counts as a fallback
    assert queue[WEATHER[2]].reasons == ("clarified",)
    assert queue[SHOES[0]].reasons == ("low_confidence", "rephrased")
    # the message the visitor rephrased into was answered with confidence and nothing followed it
    assert SHOES[1] not in queue
    assert "Welke oefeningen helpen tegen rugpijn?" not in queue  # "hallo" next is no rephrasing
    assert "ik kan niet meer plassen" not in queue  # escalations are reviewed elsewhere
    # texts are as stored: redacted
    assert "mail mij op [e-mail] over mijn rug" in queue
    assert not any("jan@example.nl" in text for text in queue)


def test_rephrasing_is_judged_by_meaning(encoder) -> None:
    vectors = encoder([SHOES[0], SHOES[1], "hallo"])
    assert float(vectors[0] @ vectors[1]) >= review.REPHRASE_SIMILARITY
    assert float(vectors[0] @ vectors[2]) < review.REPHRASE_SIMILARITY


def test_grouped_by_meaning_with_the_nearest_item(config, encoder, items) -> None:
    groups = review.group(review.candidates(all_turns(config), encoder), encoder, items)
    texts = [sorted(candidate.turn.text for candidate in g.candidates) for g in groups]
    assert texts[0] == sorted(WEATHER)  # the largest group first
    assert [SHOES[0]] in texts
    assert sum(len(t) for t in texts) == 5
    kb = load_knowledge_base(paths.knowledge_base_path())
    assert all(g.suggestion in kb.item_ids for g in groups)


def test_the_suggestion_is_the_item_nearest_by_meaning(encoder, items) -> None:
    vector = review._normalised(encoder(["welke oefeningen zijn goed voor mijn onderrug"]))[0]
    item, score = items.nearest(vector)
    assert item == "faq_best_exercises"
    assert score == pytest.approx(float(np.max(items.matrix @ vector)))


def test_cluster_keeps_unrelated_messages_apart(encoder) -> None:
    labels = review.cluster(encoder([*WEATHER, *SHOES, "asdkjh qwe zxc"]))
    assert len(set(labels[:3])) == 1
    assert len(set(labels[3:5])) == 1
    assert len(set(labels)) == 3
    assert review.cluster(np.zeros((0, 4))) == [] and review.cluster(np.ones((1, 4))) == [1]


def test_accept_relabel_and_dismiss(config, encoder, tmp_path) -> None:
    examples = tmp_path / "reviewed_examples.yml"
    queue = queued(config, encoder)
    kb = load_knowledge_base(paths.knowledge_base_path())
    with review.DecisionStore(config) as store:
        review.decide(store, queue[WEATHER[0]].turn.event_id, review.ACCEPTED, "faq_best_exercises", kb.item_ids, examples)
        review.decide(store, queue[SHOES[0]].turn.event_id, review.RELABELLED, "faq_best_exercises", kb.item_ids, examples)
        review.decide(store, queue[WEATHER[1]].turn.event_id, review.DISMISSED, None, kb.item_ids, examples)
        decided = store.decided()
        # a decided message cannot be decided again
        with pytest.raises(review.ReviewError) as again:
            review.decide(store, queue[WEATHER[1]].turn.event_id, review.ACCEPTED, "article_intro", kb.item_ids, examples)
        assert again.value.key == "staff_review_gone"
    assert decided == {queue[t].turn.event_id for t in (WEATHER[0], SHOES[0], WEATHER[1])}
    left = queued(config, encoder, decided)
    assert WEATHER[0] not in left and SHOES[0] not in left and WEATHER[1] not in left and WEATHER[2] in left
    # one list for the item, both questions in it, and in the training data `make build` writes
    assert review.read_examples(examples) == {"faq_best_exercises": [WEATHER[0], SHOES[0]]}
    assert {("faq_best_exercises", WEATHER[0]), ("faq_best_exercises", SHOES[0])} <= training_pairs(kb, examples)


def test_refusals(config, encoder, tmp_path) -> None:
    examples = tmp_path / "reviewed_examples.yml"
    queue = queued(config, encoder)
    kb = load_knowledge_base(paths.knowledge_base_path())
    with review.DecisionStore(config) as store:
        with pytest.raises(review.ReviewError) as personal:
            review.decide(store, queue["mail mij op [e-mail] over mijn rug"].turn.event_id, review.ACCEPTED,
                          "faq_best_exercises", kb.item_ids, examples)
        assert personal.value.key == "staff_review_refused_personal_data"
        with pytest.raises(review.ReviewError) as unknown:
            review.decide(store, queue[WEATHER[2]].turn.event_id, review.ACCEPTED, "greet", kb.item_ids, examples)
        assert unknown.value.key == "staff_review_refused_item"
        with pytest.raises(review.ReviewError):
            review.decide(store, 10**9, review.DISMISSED, None, kb.item_ids, examples)
        assert store.decided() == set()  # nothing was recorded
    assert not examples.exists()
    # text that is still personal data is redacted first, then refused; entity markup is refused
    with pytest.raises(review.ReviewError):
        review.example_text("bel me op 06-12345678")
    with pytest.raises(review.ReviewError):
        review.example_text("[rug](body_part) pijn")
    assert review.example_text("  wat   helpt\ttegen rugpijn ") == "wat helpt tegen rugpijn"


def training_pairs(kb, reviewed: Path) -> set:
    """(intent, text) of the training data `make build` generates with `reviewed`, read by Rasa's own reader."""
    files = article_rasa_files(kb, paths.DOMAIN.read_text(encoding="utf-8"), written_examples(paths.ARTICLE_EXAMPLES, reviewed))
    return {(m.get("intent"), m.get("text")) for m in RasaYAMLReader().reads(files.nlu).intent_examples}


def test_merge_into_an_existing_file(tmp_path) -> None:
    examples = tmp_path / "reviewed_examples.yml"
    examples.write_text(review.render_examples({"article_intro": ["waar gaat dit over"]}))
    assert review.append_example(examples, "faq_best_exercises", "welke oefeningen doe ik het best")
    assert review.append_example(examples, "article_intro", "wat is de kern")
    assert not review.append_example(examples, "article_intro", "Wat is de KERN")  # already there
    assert review.read_examples(examples) == {
        "article_intro": ["waar gaat dit over", "wat is de kern"],
        "faq_best_exercises": ["welke oefeningen doe ik het best"],
    }
    assert examples.read_text().startswith(review.REVIEWED_HEADER)
    pairs = training_pairs(load_knowledge_base(paths.knowledge_base_path()), examples)
    assert {("article_intro", "wat is de kern"), ("faq_best_exercises", "welke oefeningen doe ik het best")} <= pairs
    assert ("article_intro", "Wat is de KERN") not in pairs


def test_decisions_leave_with_their_conversation(config, encoder) -> None:
    queue = queued(config, encoder)
    event_id = queue[WEATHER[0]].turn.event_id
    with review.DecisionStore(config) as store:
        review.decide(store, event_id, review.DISMISSED, None, (), Path("/nonexistent"))
        assert store.decided() == {event_id}
    with sqlite3.connect(config["db"]) as db:  # the retention job or an erasure deletes the conversation
        db.execute("DELETE FROM events WHERE sender_id = 'weer-1'")
    with review.DecisionStore(config) as store:
        assert store.decided() == set()
    with sqlite3.connect(config["db"]) as db:
        assert db.execute("SELECT COUNT(*) FROM staff_review_decisions").fetchone()[0] == 0


def test_the_staff_floor_imports_neither_rasa_nor_the_web_app() -> None:
    """bot/staff/ is on the floor (ARCHITECTURE.md): the queue, figures and plots load no Rasa and no bot/web."""
    code = ("import sys, bot.staff.review, bot.staff.insight, bot.staff.plots; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rasa', 'sanic') or m.startswith('bot.web')))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=paths.ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
