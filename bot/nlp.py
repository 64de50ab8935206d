"""The assistant's Dutch spaCy pipeline: spaCy's blank `nl` tokenizer plus lookup lemmas.

No trained Dutch pipeline exists on PyPI, so the pipeline is built here from `spacy.blank("nl")`
and the lemma tables of `spacy-lookups-data`, then saved to `models/spacy-nl` where Rasa's
`SpacyNLP` component loads it by path. The lookup lemmas are partial ("rugspieren" -> "rugspier",
but "benen" stays "benen"), so patterns built on it list inflected forms as well.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import spacy

from spacy.language import Language

from bot import paths

PIPELINE_PATH = paths.SPACY_PIPELINE


def build_dutch_pipeline() -> Language:
    """A blank Dutch pipeline with a lookup lemmatizer, initialised from spacy-lookups-data."""
    nlp = spacy.blank("nl")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()
    return nlp


def save_dutch_pipeline(path: Path = PIPELINE_PATH) -> Path:
    """Build the pipeline and write it to `path` (a folder `spacy.load` accepts)."""
    nlp = build_dutch_pipeline()
    nlp.meta["name"] = "nl_rugpijn_lookup"
    nlp.meta["description"] = "Blank Dutch tokenizer with lookup lemmas (spacy-lookups-data)"
    path.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(path)
    return path


@lru_cache(maxsize=None)
def load_dutch_pipeline(path: Path = PIPELINE_PATH) -> Language:
    """The saved pipeline if it was built, else one built in memory (same result, slower)."""
    if (Path(path) / "meta.json").exists():
        return spacy.load(path)
    return build_dutch_pipeline()
