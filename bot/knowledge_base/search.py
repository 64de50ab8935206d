"""Semantic search over the knowledge base's paragraphs with sentence embeddings."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Sequence

import numpy as np

from bot.knowledge_base.model import KnowledgeBase, Passage

EncodeFn = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class SearchHit:
    item_id: str
    paragraph: int
    score: float

    def to_dict(self) -> dict:
        return {"item": self.item_id, "paragraph": self.paragraph, "score": round(self.score, 4)}


def knowledge_base_fingerprint(knowledge_base: KnowledgeBase) -> str:
    """Changes whenever a searchable paragraph changes."""
    payload = json.dumps([p.__dict__ for p in knowledge_base.passages()], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class PassageIndex:
    """Normalized passage vectors; a query vector's dot product with them is the cosine."""

    def __init__(self, passages: List[Passage], vectors: np.ndarray, fingerprint: str) -> None:
        if len(passages) != len(vectors):
            raise ValueError("one vector per passage")
        self.passages = passages
        self.vectors = vectors.astype(np.float32)
        self.fingerprint = fingerprint

    @classmethod
    def build(cls, knowledge_base: KnowledgeBase, encode_passages: EncodeFn) -> "PassageIndex":
        passages = knowledge_base.passages()
        vectors = encode_passages([p.text for p in passages])
        return cls(passages, np.asarray(vectors), knowledge_base_fingerprint(knowledge_base))

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def search(self, query_vector: np.ndarray, top_k: int = 5) -> List[SearchHit]:
        query = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(query))
        if norm == 0.0 or query.shape[0] != self.dimension:
            return []
        scores = self.vectors @ (query / norm)
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [
            SearchHit(self.passages[i].item_id, self.passages[i].index, float(scores[i]))
            for i in order
        ]

    def save(self, directory: Path) -> None:
        np.save(directory / "vectors.npy", self.vectors)
        meta = {"fingerprint": self.fingerprint, "passages": [p.__dict__ for p in self.passages]}
        (directory / "passages.json").write_text(json.dumps(meta, ensure_ascii=False), "utf-8")

    @classmethod
    def load(cls, directory: Path) -> "PassageIndex":
        meta = json.loads((directory / "passages.json").read_text("utf-8"))
        passages = [Passage(**p) for p in meta["passages"]]
        return cls(passages, np.load(directory / "vectors.npy"), meta["fingerprint"])
