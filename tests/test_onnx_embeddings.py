"""The ONNX query encoder (`bot.embeddings.onnx_model`) against sentence-transformers.

Exports the built `models/multilingual-e5-small` (a git-ignored build artefact; a fresh build in a
temporary folder when it is missing) to `onnx/model.onnx`, then checks, for varied Dutch/English
texts (short, longer than the 512-token limit, multi-sentence, typos, emoji, special tokens typed in
text, odd whitespace): cosine >= 0.9999 to sentence-transformers, shape/dtype, unit norm, empty
input, batch == one-by-one, the cached loader, and that encoding never imports torch. Its 4-bit
graph (`onnx/model_q4.onnx`, what the encoders run): the published Q4_0 weights bit for bit, cosine
>= 0.9995 to the float graph, chosen only while it is current. The timing of one short sentence
(median of 50, one thread) is printed, not asserted.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable, List

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from bot.embeddings.model import encode_passages, encode_queries
from bot.embeddings.onnx_model import (
    MIN_QUANTIZED_COSINE, ONNX_FILE, QUANTIZED_ONNX_FILE, WEIGHT_BLOCK, OnnxSentenceEncoder, current_graph,
    encoder_fingerprint, export_onnx, load_onnx_encoder, quantize_onnx,
)
from embedding_fixtures import embedding_model_dir, read_sentences, sentence_model  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
MIN_COSINE = 0.9999

LONG_DUTCH = (
    "Rugpijn is een veelvoorkomende klacht die bij de meeste mensen vanzelf weer overgaat. "
    "Blijf zoveel mogelijk in beweging, want bedrust vertraagt het herstel. Wandelen, fietsen en "
    "zwemmen zijn goede manieren om actief te blijven, en rustige oefeningen voor de buik- en "
    "rugspieren helpen om terugval te voorkomen. "
) * 8
LONG_ENGLISH = (
    "Low back pain usually gets better within a few weeks. Keep moving as much as you can, take "
    "simple painkillers if you need them, and see a doctor when the pain spreads to your legs, you "
    "feel numbness, or you lose control of your bladder or bowel. "
) * 6
TEXTS: List[str] = [
    "Ik heb rugpijn",
    "rugpijn",
    "Hallo!",
    "?",
    "a",
    "Hoe kan ik zelf mijn rugpijn verlichten?",
    "Which exercises help with lower back pain?",
    "Mag ik sporten met een hernia? Ik heb al twee weken last. Mijn huisarts zegt rust.",
    "I lifted a heavy box yesterday. Now my back hurts. Should I stay in bed? Or keep walking?",
    "ik heb pijn in mn ruh en het straald uit naar mijn been",  # typos
    "wat moet ik doen tegen rugpin als ik zwanger ben",
    "Mijn rug doet zeer 😣 na het tillen 🏋️‍♂️",
    "Back pain again 😭😭😭 any tips?? 🙏",
    "Zitten op kantoor maakt mijn rugpijn erger, wat kan ik doen aan mijn werkplek?",
    "Is zwemmen goed voor je rug? En fietsen?",
    "Kan stress rugpijn veroorzaken",
    "Ik voel tintelingen in mijn been én mijn rug doet pijn — is dat ernstig?",
    "Ich habe Rückenschmerzen, was soll ich tun?",  # German
    "Is een warme kruik of ijs beter bij een verrekking (na 2 dagen)?",
    "Wanneer moet ik naar de huisarts???",
    "HELP MIJN RUG ZIT VAST",
    "  spaties rondom  ",
    "Regel één\nRegel twee\tmet tab",
    "<s> speciale tokens </s> in de tekst <pad>",
    "fysiotherapeut manuele therapie rugschool McKenzie-methode",
    "Ik ben 67 jaar en heb artrose in mijn rug; wat raadt u aan?",
    "My 12-year-old son complains about back pain after football.",
    "Doe ik iets fout als ik 8 uur per dag zit en 's avonds 10.000 stappen loop?",
    LONG_DUTCH,  # > 512 tokens: truncated
    LONG_ENGLISH,  # > 128 tokens, < 512
    "kort " * 700,  # far beyond the limit
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def median_ms(function: Callable[[], object], repeats: int = 50) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


@pytest.fixture(scope="module")
def onnx_file(embedding_model_dir) -> Path:  # noqa: F811
    started = time.perf_counter()
    path = export_onnx(embedding_model_dir)
    print(
        f"\n[onnx] export (or reuse) of {path}: {time.perf_counter() - started:.1f} s, "
        f"{path.stat().st_size / 1e6:.1f} MB"
    )
    return path


@pytest.fixture(scope="module")
def quantized_file(embedding_model_dir, onnx_file) -> Path:  # noqa: F811
    started = time.perf_counter()
    path = quantize_onnx(embedding_model_dir)
    print(f"\n[onnx] 4-bit graph (or reuse) {path}: {time.perf_counter() - started:.1f} s")
    return path


@pytest.fixture(scope="module")
def encoder(embedding_model_dir, onnx_file) -> OnnxSentenceEncoder:  # noqa: F811
    """The float graph."""
    return OnnxSentenceEncoder.from_model_dir(embedding_model_dir, graph=onnx_file)


@pytest.fixture(scope="module")
def quantized_encoder(embedding_model_dir, quantized_file) -> OnnxSentenceEncoder:  # noqa: F811
    return OnnxSentenceEncoder.from_model_dir(embedding_model_dir, graph=quantized_file)


def test_export_is_idempotent(embedding_model_dir, onnx_file):  # noqa: F811
    assert onnx_file == Path(embedding_model_dir) / ONNX_FILE
    built = onnx_file.stat().st_mtime_ns
    started = time.perf_counter()
    assert export_onnx(embedding_model_dir) == onnx_file
    assert time.perf_counter() - started < 5.0  # reused, not re-exported
    assert onnx_file.stat().st_mtime_ns == built
    assert not [p.name for p in onnx_file.parent.iterdir() if p.name.endswith(".tmp")]


def test_texts_cover_truncation(encoder):
    lengths = [len(encoder.tokenizer.encode(encoder.query_prompt + text).ids) for text in TEXTS]
    assert encoder.max_seq_length == 512
    assert lengths.count(512) == 2  # two texts truncated to the limit
    assert any(128 < n < 512 for n in lengths)


def test_matches_sentence_transformers(encoder, sentence_model):  # noqa: F811
    texts = TEXTS + read_sentences()
    expected = encode_queries(sentence_model, texts)
    actual = encoder.encode_queries(texts)
    assert actual.shape == expected.shape == (len(texts), 384)
    assert actual.dtype == np.float32
    similarity = cosines(actual, expected)
    worst = int(np.argmin(similarity))
    print(f"\n[onnx] cosine to sentence-transformers over {len(texts)} texts: min {similarity.min():.7f}, "
          f"mean {similarity.mean():.7f}, max |diff| {np.abs(actual - expected).max():.2e}")
    assert similarity.min() >= MIN_COSINE, f"{texts[worst]!r}: cosine {similarity[worst]:.6f}"


def test_passages_match_sentence_transformers(encoder, sentence_model, embedding_model_dir):  # noqa: F811
    """The article's paragraphs are indexed with the "passage" prompt (KnowledgeBaseSearch)."""
    settings = json.loads((Path(embedding_model_dir) / "config_sentence_transformers.json").read_text())
    assert encoder.passage_prompt == settings["prompts"]["passage"] == "passage: "
    texts = TEXTS + read_sentences()
    similarity = cosines(encoder.encode_passages(texts), encode_passages(sentence_model, texts))
    assert similarity.min() >= MIN_COSINE
    assert cosines(encoder.encode_passages(texts[:3]), encoder.encode_queries(texts[:3])).max() < 0.9999  # another prompt


def _weights_of_4_bit_matmuls(graph: onnx.ModelProto) -> dict:
    """{node name: the dequantized [K, N] weight} of every MatMulNBits node (symmetric: zero point 8)."""
    initializers = {tensor.name: tensor for tensor in graph.graph.initializer}
    weights = {}
    for node in graph.graph.node:
        if node.op_type != "MatMulNBits":
            continue
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        k, n, block = attributes["K"], attributes["N"], attributes["block_size"]
        assert len(node.input) < 4 or not node.input[3], "symmetric: no zero points"
        packed = numpy_helper.to_array(initializers[node.input[1]])
        scales = numpy_helper.to_array(initializers[node.input[2]]).reshape(n, -1)
        nibbles = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(n, -1)[:, :k].astype(np.float32)
        weights[node.name] = ((nibbles.reshape(n, -1, block) - 8) * scales[:, :, None]).reshape(n, k).T
    return weights


def test_the_4_bit_graph_stores_the_published_weights_exactly(onnx_file, quantized_file):
    """Every weight MatMul of the float graph is a MatMulNBits node whose 4-bit blocks of 32 give back
    the float weights bit for bit: they were Q4_0 (blocks of 32 sharing a scale) to begin with."""
    float_graph = onnx.load(str(onnx_file))
    quantized = onnx.load(str(quantized_file))
    initializers = {tensor.name: tensor for tensor in float_graph.graph.initializer}
    weight_matmuls = {node.name: node for node in float_graph.graph.node
                      if node.op_type == "MatMul" and node.input[1] in initializers}
    weights = _weights_of_4_bit_matmuls(quantized)
    assert len(weights) == len(weight_matmuls) == 12 * 6  # q, k, v, attention output, two feed-forward
    assert not [node for node in quantized.graph.node if node.op_type == "MatMul" and node.input[1] in initializers]
    for name, weight in weights.items():
        original = numpy_helper.to_array(initializers[weight_matmuls[name.removesuffix("_Q4")].input[1]])
        assert weight.shape == original.shape and weight.shape[0] % WEIGHT_BLOCK == 0
        np.testing.assert_array_equal(weight, original, err_msg=name)


@pytest.mark.parametrize("prompt", ["query", "passage"])
def test_the_4_bit_graph_matches_the_float_graph(prompt, encoder, quantized_encoder):
    texts = TEXTS + read_sentences()
    encode = "encode_queries" if prompt == "query" else "encode_passages"
    similarity = cosines(getattr(quantized_encoder, encode)(texts), getattr(encoder, encode)(texts))
    worst = int(np.argmin(similarity))
    print(f"\n[onnx] 4-bit graph, {prompt}, cosine to the float graph over {len(texts)} texts: "
          f"min {similarity.min():.6f}, mean {similarity.mean():.6f}")
    assert similarity.min() >= MIN_QUANTIZED_COSINE, f"{texts[worst]!r}: cosine {similarity[worst]:.6f}"
    batch = quantized_encoder.encode_queries(TEXTS)
    np.testing.assert_allclose(batch, np.vstack([quantized_encoder.encode_queries([t]) for t in TEXTS]), atol=1e-5)


def test_the_encoders_run_the_4_bit_graph_only_while_it_is_current(embedding_model_dir, quantized_file, tmp_path):  # noqa: F811
    assert current_graph(embedding_model_dir) == quantized_file == Path(embedding_model_dir) / QUANTIZED_ONNX_FILE
    folder = tmp_path / "model"
    (folder / "onnx").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    for name in (ONNX_FILE, QUANTIZED_ONNX_FILE):
        (folder / name).write_bytes(b"graph")
    os.utime(folder / "config.json", (1_000_000, 1_000_000))
    os.utime(folder / ONNX_FILE, (2_000_000, 2_000_000))
    os.utime(folder / QUANTIZED_ONNX_FILE, (3_000_000, 3_000_000))
    assert current_graph(folder) == folder / QUANTIZED_ONNX_FILE
    os.utime(folder / ONNX_FILE, (4_000_000, 4_000_000))  # the float graph exported again: 4-bit one stale
    assert current_graph(folder) == folder / ONNX_FILE
    os.utime(folder / "config.json", (5_000_000, 5_000_000))  # new weights: both stale
    assert current_graph(folder) is None


def test_shape_dtype_and_norm(encoder):
    vectors = encoder.encode_queries(TEXTS)
    assert vectors.shape == (len(TEXTS), encoder.dimension) == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    single = encoder.encode_queries(["Ik heb rugpijn"])
    assert single.shape == (1, 384) and single.dtype == np.float32


def test_empty_input(encoder):
    for empty in ([], ()):
        vectors = encoder.encode_queries(empty)
        assert vectors.shape == (0, 384) and vectors.dtype == np.float32


def test_batch_equals_one_by_one(encoder):
    batch = encoder.encode_queries(TEXTS)
    small_batches = encoder.encode_queries(TEXTS, batch_size=3)
    one_by_one = np.vstack([encoder.encode_queries([text]) for text in TEXTS])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)
    np.testing.assert_allclose(small_batches, one_by_one, atol=1e-5)


def test_prompt_and_limits_from_the_folder(encoder, embedding_model_dir):  # noqa: F811
    settings = json.loads((Path(embedding_model_dir) / "config_sentence_transformers.json").read_text())
    assert encoder.query_prompt == settings["prompts"]["query"] == "query: "


def test_loader_is_cached_and_none_without_graph(embedding_model_dir, onnx_file, tmp_path):  # noqa: F811
    first = load_onnx_encoder(embedding_model_dir)
    assert first is not None
    assert load_onnx_encoder(str(embedding_model_dir)) is first
    # A folder without the ONNX file: None, so callers fall back to sentence-transformers.
    assert load_onnx_encoder(tmp_path) is None


def test_runtime_does_not_import_torch(embedding_model_dir, onnx_file):  # noqa: F811
    script = textwrap.dedent(
        f"""
        import json, sys
        from bot.embeddings.onnx_model import load_onnx_encoder
        vectors = load_onnx_encoder({str(embedding_model_dir)!r}).encode_queries(["Ik heb rugpijn"])
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "sentence_transformers", "transformers"))
        print(json.dumps({{"shape": list(vectors.shape), "heavy": heavy}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"shape": [1, 384], "heavy": []}


def test_timing_single_short_sentence(encoder, quantized_encoder, sentence_model):  # noqa: F811
    """Printed only: one short sentence, one thread each (median of 50)."""
    import torch

    text = ["Hoe kan ik zelf mijn rugpijn verlichten?"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch_ms = median_ms(lambda: encode_queries(sentence_model, text))
    finally:
        torch.set_num_threads(threads)
    onnx_ms = median_ms(lambda: encoder.encode_queries(text))
    quantized_ms = median_ms(lambda: quantized_encoder.encode_queries(text))
    print(f"\n[onnx] one short sentence, 1 thread, median of 50: sentence-transformers {torch_ms:.1f} ms, "
          f"onnxruntime {onnx_ms:.1f} ms ({torch_ms / onnx_ms:.1f}x), 4-bit graph {quantized_ms:.1f} ms "
          f"({torch_ms / quantized_ms:.1f}x)")


def test_the_training_fingerprint_follows_the_graphs_content_not_its_time(tmp_path):
    """Rasa's training cache keys the encoding components on `encoder_fingerprint`: a graph
    exported again with the same bytes (or touched by make) keeps it, other bytes change it, no
    graph means sentence-transformers."""
    (tmp_path / "config.json").write_text("{}")
    os.utime(tmp_path / "config.json", (1_000_000, 1_000_000))
    assert encoder_fingerprint(tmp_path) == "sentence-transformers"
    graph = tmp_path / ONNX_FILE
    graph.parent.mkdir()
    graph.write_bytes(b"graph one")
    first = encoder_fingerprint(tmp_path)
    os.utime(graph, (2_000_000, 2_000_000))
    assert encoder_fingerprint(tmp_path) == first != "sentence-transformers"
    graph.write_bytes(b"graph two")
    assert encoder_fingerprint(tmp_path) != first


def test_rasa_servers_keep_torch_out_only_when_every_embedding_model_runs_in_onnxruntime(tmp_path):
    """bot/rasa_server.py: with the project's config.yml (its models exported by `make build`) torch
    is marked absent, so spaCy's thinc runs without it; with a model that has no graph (a hub name)
    torch stays available for sentence-transformers."""
    hub_config = tmp_path / "config.yml"
    hub_config.write_text("pipeline:\n  - name: bot.components.sentence_embedding_featurizer.SentenceEmbeddingFeaturizer\n"
                          "    model: intfloat/multilingual-e5-small\n  - name: SpacyNLP\n    model: models/spacy-nl\n")
    script = textwrap.dedent(
        f"""
        import json
        from pathlib import Path
        from bot.rasa_server import embedding_models, keep_torch_out
        hub = embedding_models(Path({str(hub_config)!r}))
        kept_for_hub = keep_torch_out(hub)
        kept_for_ours = keep_torch_out(embedding_models())
        import thinc.compat
        print(json.dumps([hub, kept_for_hub, kept_for_ours, thinc.compat.has_torch]))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [["intfloat/multilingual-e5-small"], False, True, False]
