"""The retrieval baselines the assistant is compared with on the dev set: BM25 over the article's
passages, the nearest passage by the shipped embedding model, and Rasa's default pipeline."""
from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import rasa
import yaml
from rank_bm25 import BM25Okapi
from rasa.core.agent import Agent
from rasa.utils.log_utils import configure_structlog
from tqdm import tqdm

from bot import paths
from bot.devtools.benchmark.training import RASA, run_with_progress
from bot.devtools.evaluation import DevQuestion, DevSetScore, score_dev_set
from bot.embeddings.model import DEFAULT_EMBEDDING_MODEL, encode_passages, encode_queries, load_sentence_transformer
from bot.knowledge_base import KnowledgeBase, Passage
from bot.knowledge_base.search import PassageIndex, knowledge_base_fingerprint
from bot.nlp import load_dutch_pipeline
from bot.replies import item_text

Predictor = Callable[[str], Optional[str]]

# Rasa 3.6's `rasa init` config: no pipeline, so Rasa fills in its default pipeline
# (rasa/engine/recipes/config_files/default_config.yml: WhitespaceTokenizer, RegexFeaturizer,
# LexicalSyntacticFeaturizer, CountVectorsFeaturizer, CountVectorsFeaturizer char_wb 1-4,
# DIETClassifier 100 epochs, EntitySynonymMapper, ResponseSelector 100 epochs,
# FallbackClassifier 0.3). Only the language is the project's.
RASA_DEFAULT_CONFIG = """\
recipe: default.v1
assistant_id: rasa-default-baseline
language: nl
pipeline:
policies:
"""


# --- BM25 -------------------------------------------------------------------------------------

def dutch_tokens(text: str) -> List[str]:
    """Lower-cased lookup lemmas of the project's Dutch spaCy pipeline, without punctuation,
    spaces and stop words (the usual preprocessing for BM25)."""
    nlp = load_dutch_pipeline()
    tokens = [
        (token.lemma_ or token.text).lower()
        for token in nlp(text)
        if not (token.is_punct or token.is_space or token.is_stop)
    ]
    return tokens or [token.text.lower() for token in nlp(text) if not token.is_space]


def baseline_passages(kb: KnowledgeBase) -> List[Passage]:
    """The knowledge base's passages, plus one passage each for the items without paragraphs
    (the article's metadata and its sources) with the text an answer about them quotes, so
    that every item is reachable by the retrieval baselines."""
    passages = list(kb.passages())
    for item in kb.items:
        text = "" if item.paragraphs else item_text(kb, item)
        if text:
            passages.append(Passage(item.id, 0, text))
    return passages


class BM25Retriever:
    """BM25 (Okapi, rank_bm25) over passages; predicts the item of the best passage."""

    def __init__(self, passages: Sequence[Passage], tokenize: Callable[[str], List[str]] = dutch_tokens) -> None:
        self.passages = list(passages)
        self.tokenize = tokenize
        self.bm25 = BM25Okapi([tokenize(p.text) for p in self.passages])

    def rank(self, text: str) -> List[Tuple[Passage, float]]:
        scores = self.bm25.get_scores(self.tokenize(text))
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        return [(self.passages[i], float(scores[i])) for i in order]

    def predict(self, text: str) -> Optional[str]:
        ranking = self.rank(text)
        return ranking[0][0].item_id if ranking else None


# --- nearest passage by the embedding model ---------------------------------------------------

def configured_embedding_model() -> str:
    """The embedding model config.yml names (a folder relative to the repository root, or a name)."""
    config = yaml.safe_load(paths.CONFIG.read_text(encoding="utf-8"))
    name = next(
        (c.get("model") for c in config["pipeline"] if c["name"].endswith("SentenceEmbeddingFeaturizer")),
        DEFAULT_EMBEDDING_MODEL,
    )
    folder = paths.absolute(name)
    return str(folder) if folder.is_dir() else name


def embedding_knn_predictor(kb: KnowledgeBase, texts: Sequence[str] = ()) -> Predictor:
    """Nearest passage by the shipped embedding model, no training. `texts` known in advance are
    encoded in one batch."""
    model = load_sentence_transformer(configured_embedding_model())
    passages = baseline_passages(kb)
    vectors = np.asarray(encode_passages(model, [p.text for p in passages]))
    index = PassageIndex(passages, vectors, knowledge_base_fingerprint(kb))
    known = dict(zip(texts, encode_queries(model, list(texts)))) if texts else {}

    def predict(text: str) -> Optional[str]:
        vector = known[text] if text in known else encode_queries(model, [text])[0]
        hits = index.search(vector, top_k=1)
        return hits[0].item_id if hits else None

    return predict


# --- Rasa's default pipeline ------------------------------------------------------------------

def intent_to_item(kb: KnowledgeBase, intent: Optional[str]) -> Optional[str]:
    """The item the assistant would cite for a predicted intent: article intents are item ids;
    anything else (conversation intents, nlu_fallback) cites nothing."""
    return intent if intent and kb.item(intent) else None


def hash_inputs(*parts: bytes) -> str:
    """A short digest of several byte strings (each hashed on its own first)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def rasa_default_key(nlu_files: Sequence[Path]) -> str:
    """The cache key of the baseline model: its config, the Rasa version and the training data."""
    return hash_inputs(
        RASA_DEFAULT_CONFIG.encode(), rasa.__version__.encode(),
        *(f.name.encode() + b"\0" + f.read_bytes() for f in nlu_files),
    )


def train_rasa_default(nlu_files: Sequence[Path], target: Path) -> None:
    """`rasa train nlu` with RASA_DEFAULT_CONFIG into `target`; the filled-in config beside it."""
    with tempfile.TemporaryDirectory(prefix="rasa-default-") as tmp:
        work = Path(tmp)
        config = work / "config.yml"
        config.write_text(RASA_DEFAULT_CONFIG, encoding="utf-8")
        data = work / "nlu"
        data.mkdir()
        for f in nlu_files:
            shutil.copy(f, data / f.name)
        command = [
            str(RASA), "train", "nlu", "--config", str(config),
            "--nlu", str(data), "--out", str(work / "out"), "--fixed-model-name", "rasa_default",
        ]
        run_with_progress(command, work, paths.REPORTS_DIR / "rasa_default_train.log", "train rasa_default")
        shutil.move(str(work / "out" / "rasa_default.tar.gz"), target)
        # Rasa writes the pipeline it filled in into the config file as comments: keep it.
        shutil.copy(config, target.with_name(target.name.replace(".tar.gz", ".config.yml")))


def rasa_default_model() -> Path:
    """Rasa's default pipeline trained on data/nlu/*.yml, cached under models/baselines/ by a
    hash of its inputs (config, training data, Rasa version)."""
    nlu_files = sorted(paths.NLU_DATA_DIR.glob("*.yml"))
    target = paths.BASELINES_DIR / f"rasa_default-{rasa_default_key(nlu_files)}.tar.gz"
    if not target.exists():
        paths.BASELINES_DIR.mkdir(parents=True, exist_ok=True)
        train_rasa_default(nlu_files, target)
    return target


def rasa_default_predictor(kb: KnowledgeBase, model_path: Path) -> Predictor:
    """The item cited for the intent the baseline model predicts (in-process Agent)."""
    configure_structlog(logging.WARNING)  # else every parse is logged to stdout
    loop = asyncio.new_event_loop()
    agent = Agent.load(str(model_path))

    def predict(text: str) -> Optional[str]:
        result = loop.run_until_complete(agent.parse_message(text))
        return intent_to_item(kb, (result.get("intent") or {}).get("name"))

    return predict


# --- scoring ----------------------------------------------------------------------------------

def accuracy_entry(score: DevSetScore, rejects: bool) -> Dict[str, Any]:
    """Article top-1 always; the 'other' questions (must cite nothing) only for methods that can
    decline to cite (the retrieval baselines always cite a passage)."""
    return {
        "article_accuracy": round(score.article_accuracy, 4),
        "article": [score.article_correct, score.article_total],
        "other_accuracy": round(score.other_accuracy, 4) if rejects else None,
        "other": [score.other_correct, score.other_total] if rejects else None,
    }


def score_offline(
    kb: KnowledgeBase, questions: Sequence[DevQuestion], predict: Predictor, description: str, rejects: bool
) -> Dict[str, Any]:
    """The accuracy entry of an in-process predictor on the dev set, with a progress bar."""
    bar = tqdm(total=len(questions), desc=description, unit="q", leave=False)

    def predict_with_progress(text: str) -> Optional[str]:
        bar.update(1)
        return predict(text)

    try:
        return accuracy_entry(score_dev_set(kb, questions, predict_with_progress), rejects)
    finally:
        bar.close()
