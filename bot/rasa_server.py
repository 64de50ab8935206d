"""`rasa` as this project's servers run it (`make run`, `make cluster`): Rasa's own command line,
without torch in the process when the embedding model runs in onnxruntime.

    python -m bot.rasa_server run --enable-api --model models/assistant.tar.gz …

Why: spaCy's thinc imports torch whenever it is installed (`thinc.compat`), and torch is installed
for building the embedding model. A Rasa server that encodes with onnxruntime never calls it, yet
it costs ~540 MB of resident memory per server (measured: `import spacy, tensorflow, onnxruntime`
holds 1156 MB with torch importable, 616 MB without). Marking `torch` as absent in `sys.modules`
(Python's documented way: `import torch` then raises ImportError, `importlib.util.find_spec`
answers None) makes thinc and every other optional user fall back to running without it.

Which embedding models the servers use is read from the project's config.yml (the `model` of this
project's components, `bot.components.*`). When one of them has no current ONNX graph (e.g. a
sentence-transformers name from a hub), the components fall back to sentence-transformers, which
needs torch: then nothing is changed. `rasa train` and the tools that build the model keep torch.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import List

import yaml

from bot import paths
from bot.embeddings.onnx_model import serves_without_torch

TORCH = "torch"
COMPONENTS_PACKAGE = "bot.components."
MODEL_KEY = "model"


def embedding_models(config: Path = paths.CONFIG) -> List[str]:
    """The `model` of every component of this project in the pipeline of `config`."""
    pipeline = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("pipeline") or []
    return [str(component[MODEL_KEY]) for component in pipeline
            if str(component.get("name", "")).startswith(COMPONENTS_PACKAGE) and component.get(MODEL_KEY)]


def keep_torch_out(models: List[str]) -> bool:
    """Marks torch absent for this process when every one of `models` runs in onnxruntime; whether
    it did."""
    if TORCH in sys.modules or not models or not all(serves_without_torch(model) for model in models):
        return False
    sys.modules[TORCH] = None  # type: ignore[assignment]
    return True


def main() -> None:
    keep_torch_out(embedding_models())
    # Rasa is imported only now: its imports load spaCy, which must not find torch.
    sys.exit(importlib.import_module("rasa.__main__").main())


if __name__ == "__main__":
    main()
