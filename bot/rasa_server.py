"""`rasa` as this project's servers run it (`make run`, `make cluster`): Rasa's own command line,
without torch in the process when the embedding model runs in onnxruntime.

    python -m bot.rasa_server run --enable-api --model models/assistant.tar.gz …

Why: spaCy's thinc imports torch whenever it is installed (`thinc.compat`), and torch is installed
for building the embedding model. A Rasa server that encodes with onnxruntime never calls it, yet
it costs ~540 MB of resident memory per server (measured: `import spacy, tensorflow, onnxruntime`
holds 1156 MB with torch importable, 616 MB without). Marking `torch` as absent in `sys.modules`
(Python's documented way: `import torch` then raises ImportError, `importlib.util.find_spec`
answers None) makes thinc and every other optional user fall back to running without it.

When the ONNX graph is missing or stale, the components fall back to sentence-transformers, which
needs torch: then nothing is changed. `rasa train` and the tools that build the model keep torch.
"""
from __future__ import annotations

import importlib
import sys

from bot.embeddings.onnx_model import serves_without_torch

TORCH = "torch"


def keep_torch_out() -> bool:
    """Marks torch absent for this process when nothing in it needs torch; whether it did."""
    if TORCH in sys.modules or not serves_without_torch():
        return False
    sys.modules[TORCH] = None  # type: ignore[assignment]
    return True


def main() -> None:
    keep_torch_out()
    # Rasa is imported only now: its imports load spaCy, which must not find torch.
    sys.exit(importlib.import_module("rasa.__main__").main())


if __name__ == "__main__":
    main()
