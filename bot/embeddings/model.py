"""Load the configured sentence-embedding model once per process; encode queries and passages.

`DEFAULT_EMBEDDING_MODEL` is the folder `python -m bot.embeddings.convert` writes. Anything else
SentenceTransformer accepts works too (a folder, or a hub name such as
`intfloat/multilingual-e5-small` where the hub is reachable): the model's own "query"/"passage"
prompts are used when it defines them, no prompt otherwise.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from bot import paths

if TYPE_CHECKING:  # importing sentence_transformers (torch) is slow: only when a model is loaded
    from sentence_transformers import SentenceTransformer

DEFAULT_EMBEDDING_MODEL = "models/multilingual-e5-small"
QUERY_PROMPT = "query"
PASSAGE_PROMPT = "passage"


def resolve_model_name(name_or_path: str) -> str:
    """A local folder as an absolute path (relative ones: the working directory, then the
    repository root); anything else (a hub name) unchanged."""
    path = Path(name_or_path).expanduser()
    if path.is_absolute():
        return str(path)
    for base in (Path.cwd(), paths.ROOT):
        if (base / path).is_dir():
            return str((base / path).resolve())
    return name_or_path


@lru_cache(maxsize=None)
def load_sentence_transformer(name_or_path: str = DEFAULT_EMBEDDING_MODEL) -> "SentenceTransformer":
    """The model, loaded on the CPU once per process (same object for the same name)."""
    resolved = resolve_model_name(str(name_or_path))
    if resolved == DEFAULT_EMBEDDING_MODEL:  # the local folder, not built yet
        raise FileNotFoundError(
            f"{DEFAULT_EMBEDDING_MODEL} is missing: build it with `python -m bot.embeddings.convert` (make build)"
        )
    return _load(resolved)


@lru_cache(maxsize=None)
def _load(resolved: str) -> "SentenceTransformer":
    from sentence_transformers import SentenceTransformer

    # A local folder never needs the hub (no network look-ups, even without HF_HUB_OFFLINE).
    return SentenceTransformer(resolved, device="cpu", local_files_only=Path(resolved).is_dir())


def _prompt(model: "SentenceTransformer", name: str) -> Optional[str]:
    prompts = getattr(model, "prompts", None) or {}
    return name if prompts.get(name) else None


def _encode(model: "SentenceTransformer", texts: Sequence[str], prompt_name: str, batch_size: int) -> np.ndarray:
    texts = list(texts)
    if not texts:
        dimension = model.get_sentence_embedding_dimension() or 0
        return np.zeros((0, dimension), dtype=np.float32)
    vectors = model.encode(
        texts,
        prompt_name=_prompt(model, prompt_name),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), -1)


def encode_queries(model: "SentenceTransformer", texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """L2-normalized float32 embeddings `[len(texts), dim]` of questions ("query" prompt if any)."""
    return _encode(model, texts, QUERY_PROMPT, batch_size)


def encode_passages(model: "SentenceTransformer", texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """L2-normalized float32 embeddings `[len(texts), dim]` of documents ("passage" prompt if any)."""
    return _encode(model, texts, PASSAGE_PROMPT, batch_size)
