"""The semantic warning-sign layer: the model (fit, recognise, save/load), the banks, and the rule
that combines it with the patterns (bot/escalation/layers.py)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.components import semantic_sign_recognizer
from bot.components.semantic_sign_recognizer import SemanticSignRecognizer
from bot.escalation.layers import PATTERNS, SEMANTIC, combine_layers, semantic_blocked
from bot.escalation.semantic import (
    SemanticFinding,
    SemanticSignModel,
    NONE_CLASS,
    load_ordinary_questions,
    load_paraphrases,
    judge,
    semantic_settings,
    strongest,
    texts_to_judge,
    training_examples,
    training_files_fingerprint,
)
from bot.levels import LEVELS, NONE

THRESHOLDS = {"urgent_112": 0.45, "urgent_now": 0.45, "soon": 0.65}


@pytest.fixture(scope="module")
def toy_model() -> SemanticSignModel:
    """Three well separated classes in 3-d: none, fever (soon), urinary_retention (urgent_now)."""
    rng = np.random.default_rng(0)
    centres = {"none": [1, 0, 0], "fever": [0, 1, 0], "urinary_retention": [0, 0, 1]}
    vectors, labels = [], []
    for name, centre in centres.items():
        vectors.append(np.array(centre) + 0.05 * rng.standard_normal((30, 3)))
        labels += [name] * 30
    levels = {"none": "none", "fever": "soon", "urinary_retention": "urgent_now"}
    return SemanticSignModel.fit(np.vstack(vectors), labels, levels, 1.0, THRESHOLDS)


def test_recognises_the_level_of_the_nearest_class(toy_model):
    assert toy_model.recognise(np.array([0, 0, 1.0])) == SemanticFinding("urinary_retention", "urgent_now", pytest.approx(1.0, abs=0.05))
    assert toy_model.recognise(np.array([0, 1.0, 0])).level == "soon"
    assert toy_model.recognise(np.array([1.0, 0, 0])) is None


def test_same_vector_same_verdict_and_save_load_round_trip(toy_model, tmp_path):
    vector = np.array([0.2, 0.1, 0.9])
    toy_model.save(tmp_path)
    loaded = SemanticSignModel.load(tmp_path)
    assert loaded.recognise(vector) == toy_model.recognise(vector) == toy_model.recognise(vector)
    assert np.allclose(loaded.probabilities(vector), toy_model.probabilities(vector))


def test_banks_cover_every_escalating_sign_of_the_policy_40_times():
    examples = load_paraphrases()
    counts = {}
    for example in examples:
        counts[example.class_id] = counts.get(example.class_id, 0) + 1
        assert example.level in LEVELS and example.text.strip()
    policy_signs = {"serious_accident", "chest_pain", "short_of_breath", "aortic_signs", "urinary_retention",
                    "incontinence", "saddle_anaesthesia", "both_legs_numb_or_weak", "walking_fails", "foot_drop",
                    "sexual_dysfunction", "fever_very_ill", "post_procedure", "painkillers_do_not_help",
                    "first_episode_age", "cancer_history", "weight_loss", "feeling_ill", "fever",
                    "constant_or_night_pain", "osteoporosis_or_steroids", "one_leg_numbness", "no_improvement",
                    "worsening", "recurrent_pain", "lump_or_deformity", "daily_life_limited"}
    assert policy_signs <= set(counts)
    assert min(counts[sign] for sign in policy_signs) >= 40 and counts["none"] >= 100


def test_settings_and_fingerprint():
    settings = semantic_settings()
    assert set(settings["thresholds"]) == {"soon", "urgent_now", "urgent_112"}
    assert len(training_files_fingerprint()) == 16


DETECTION = {"level": "none", "signs": [{"sign_id": "back_pain", "level": "none", "text": "rugpijn"}],
             "hypothetical": [], "negated": [], "scope": {}}
FINDING = SemanticFinding("urinary_retention", "urgent_now", 0.8)


def test_semantic_adds_a_level_and_is_audited():
    combined = combine_layers(DETECTION, FINDING, "er komt   geen druppel meer uit")
    assert combined["level"] == "urgent_now"
    assert [s["layer"] for s in combined["signs"]] == [PATTERNS, SEMANTIC]
    assert combined["signs"][-1] == {"sign_id": "urinary_retention", "level": "urgent_now", "score": 0.8,
                                     "layer": SEMANTIC, "text": "er komt geen druppel meer uit", "sentences": []}


def test_semantic_never_lowers_what_the_patterns_found():
    urgent = {**DETECTION, "level": "urgent_112", "signs": [{"sign_id": "chest_pain", "level": "urgent_112", "text": "borst"}]}
    assert combine_layers(urgent, SemanticFinding("fever", "soon", 0.9), "x")["level"] == "urgent_112"


@pytest.mark.parametrize("scope", ["hypothetical", "general_question", "hearsay", "resolved_past"])
def test_semantic_respects_the_message_scope(scope):
    detection = {**DETECTION, "scope": {scope: True}}
    combined = combine_layers(detection, FINDING, "x")
    assert combined["level"] == "none" and combined["semantic_blocked"]["sign_id"] == "urinary_retention"


def test_semantic_respects_the_scope_of_the_sentence_it_judged():
    sentence = "Mijn buurman kon vorig jaar niet plassen."
    detection = {**DETECTION, "scoped": [{"reason": "hearsay", "text": sentence}]}
    in_scope = SemanticFinding("urinary_retention", "urgent_now", 0.8, sentence)
    assert semantic_blocked(detection, in_scope)
    elsewhere = SemanticFinding("urinary_retention", "urgent_now", 0.8, "Ik kan sinds vanochtend niet plassen.")
    assert not semantic_blocked(detection, elsewhere)
    assert not semantic_blocked({**detection, "scoped": [{"reason": "negation", "text": sentence}]}, in_scope)
    # a finding on the whole message rests on its sentences: set apart only when all of them are
    whole = "Mijn buurman kon vorig jaar niet plassen. Ik heb zelf spit."
    assert semantic_blocked(detection, SemanticFinding("urinary_retention", "urgent_now", 0.5, whole, (sentence,)))
    both = (sentence, "Ik kan sinds vanochtend niet plassen.")
    assert not semantic_blocked(detection, SemanticFinding("urinary_retention", "urgent_now", 0.5, whole, both))


def test_semantic_respects_a_sign_the_patterns_found_negated():
    negated = {**DETECTION, "negated": [{"sign_id": "fever", "level": "soon", "text": "geen koorts"}]}
    assert semantic_blocked(negated, SemanticFinding("fever", "soon", 0.9))
    assert semantic_blocked(negated, SemanticFinding("fever_very_ill", "urgent_now", 0.9))  # stands for fever
    confident = SemanticFinding("urinary_retention", "urgent_now", 0.95)
    assert not semantic_blocked(negated, confident)  # another sign, confidently


def test_semantic_does_not_judge_text_without_a_known_word():
    assert combine_layers(DETECTION, FINDING, "xqzt vlorp", unknown_words=True)["level"] == "none"


def test_an_understood_negation_needs_a_very_confident_semantic_layer():
    denied = {**DETECTION, "negated": [{"sign_id": "serious_accident", "level": "urgent_112", "text": "geen ongeluk"}]}
    assert semantic_blocked(denied, SemanticFinding("fever_very_ill", "urgent_now", 0.6))
    assert not semantic_blocked(denied, SemanticFinding("fever_very_ill", "urgent_now", 0.95))
    present = {**denied, "signs": [{"sign_id": "fever", "level": "soon", "text": "koorts"}]}
    assert not semantic_blocked(present, SemanticFinding("fever_very_ill", "urgent_now", 0.6))


def test_ages_are_read_by_the_patterns():
    finding = SemanticFinding("first_episode_age", "soon", 0.9)
    assert semantic_blocked(DETECTION, finding)  # "ben 34 en heb sinds het verhuizen rugpijn"
    aged = {**DETECTION, "signs": DETECTION["signs"] + [{"sign_id": "age_over_50", "level": "none", "text": "63"}]}
    assert not semantic_blocked(aged, finding)


def test_denying_a_context_sign_is_no_understood_negation():
    context_denied = {**DETECTION, "negated": [{"sign_id": "back_pain", "level": "none", "text": "niet te doen"}]}
    assert not semantic_blocked(context_denied, SemanticFinding("painkillers_do_not_help", "urgent_now", 0.6))


def test_texts_to_judge_besides_the_message():
    assert texts_to_judge("kanplasnie", "kan plas niet", 12) == ["kan plas niet"]
    assert texts_to_judge("Welke oefeningen helpen? Ik kan sinds vanochtend niet plassen.",
                          "Welke oefeningen helpen? Ik kan sinds vanochtend niet plassen.", 12) == [
        "Welke oefeningen helpen?", "Ik kan sinds vanochtend niet plassen."]
    assert texts_to_judge("hoi", "hoi", 12) == []


def test_the_strongest_finding_wins(toy_model):
    vectors = {"a": np.array([1.0, 0, 0]), "b": np.array([0, 0, 1.0]), "c": np.array([0, 1.0, 0])}
    finding = judge(toy_model, "a", vectors["a"], "a. b. c", lambda texts: np.vstack([vectors[t.strip(".")] if t.strip(".") in vectors else vectors["a"] for t in texts]), 1)
    assert finding.level == "urgent_now" and finding.text == "b."
    assert strongest([None, None]) is None


def test_a_level_without_a_part_threshold_is_not_judged_on_parts(toy_model):
    assert toy_model.recognise(np.array([0, 1.0, 0]), thresholds={"urgent_now": 0.6, "urgent_112": 0.6}) is None
    assert toy_model.recognise(np.array([0, 0, 1.0]), thresholds={"urgent_now": 0.6, "urgent_112": 0.6}).level == "urgent_now"


def _text_vectors(texts):
    """A stand-in encoder: a fixed pseudo-random 16-d vector per text (the test is about which data
    the layer learns from, not about meaning)."""
    seeds = [int.from_bytes(hashlib.blake2b(t.encode(), digest_size=4).digest(), "big") for t in texts]
    return np.vstack([np.random.default_rng(seed).standard_normal(16) for seed in seeds])


def test_the_layer_learns_none_from_its_frozen_ordinary_questions():
    texts, classes, level_of = training_examples()
    ordinary = load_ordinary_questions()
    assert len(ordinary) >= 500 and len(set(ordinary)) == len(ordinary)
    assert texts[-len(ordinary):] == ordinary and set(classes[-len(ordinary):]) == {NONE_CLASS}
    assert texts[:-len(ordinary)] == [p.text for p in load_paraphrases()]
    assert level_of[NONE_CLASS] == NONE and set(classes) == set(level_of)


def test_article_questions_in_the_training_data_do_not_move_the_layer(tmp_path, monkeypatch):
    """More (or fewer) NLU examples leave the trained layer exactly as it was."""
    monkeypatch.setattr(semantic_sign_recognizer, "query_encoder", lambda model: _text_vectors)
    storage, context = LocalModelStorage(tmp_path), ExecutionContext(GraphSchema({}), "semantic_test")
    config = SemanticSignRecognizer.get_default_config()
    more = TrainingData([Message(data={"text": f"vraag {i} over oefeningen", "intent": "faq_best_exercises"})
                         for i in range(50)])
    trained = []
    for name, data in [("without", TrainingData()), ("with", more)]:
        SemanticSignRecognizer.create(config, storage, Resource(name), context).train(data)
        trained.append(SemanticSignRecognizer.load(config, storage, Resource(name), context)._model)
    without, with_more = trained
    assert without.classes == with_more.classes and NONE_CLASS in without.classes
    np.testing.assert_array_equal(without.coef, with_more.coef)
    np.testing.assert_array_equal(without.intercept, with_more.intercept)
