"""Where the project's files are: absolute paths from the repository root, whatever the working
directory. The one place that knows the layout; overridable only where a deployment needs it."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DATA_DIR = ROOT / "data"
MODELS_DIR = ROOT / "models"
VAR_DIR = ROOT / "var"
REPORTS_DIR = ROOT / "reports"
TESTS_DIR = ROOT / "tests"

ARTICLE = DATA_DIR / "article" / "rugpijn-bewegen.md"
ARTICLE_EXAMPLES = DATA_DIR / "article" / "examples.yml"  # questions written per article item
REVIEWED_EXAMPLES = DATA_DIR / "article" / "reviewed_examples.yml"  # visitors' questions staff accepted (bot/staff/review.py)
NLU_DATA_DIR = DATA_DIR / "nlu"
# Generated from the article by `make build` (git-ignored): the items' training data and rules;
# the items' intents are written into the marked block of domain.yml.
ARTICLE_NLU = NLU_DATA_DIR / "article.yml"
ARTICLE_RULES = DATA_DIR / "article_rules.yml"
PRODUCTS = DATA_DIR / "products.yml"
NOT_COVERED = DATA_DIR / "not_covered.yml"  # topics the article does not answer (bot/coverage.py)
SIGN_QUESTIONS = DATA_DIR / "sign_questions.yml"  # questions about warning signs in general (bot/coverage.py)
QUANTITY_QUESTIONS = DATA_DIR / "quantity_questions.yml"  # "hoe vaak?" follow-ups and the words that answer them
ITEM_WORDS = DATA_DIR / "item_words.yml"  # words that name the metadata or the sources in one question of several
SUGGESTIONS = DATA_DIR / "suggestions.yml"

KNOWLEDGE_BASE = MODELS_DIR / "knowledge_base.json"
EMBEDDING_MODEL = MODELS_DIR / "multilingual-e5-small"
SPACY_PIPELINE = MODELS_DIR / "spacy-nl"
RASA_MODEL = MODELS_DIR / "assistant.tar.gz"
BASELINES_DIR = MODELS_DIR / "baselines"

BOT_DIR = ROOT / "bot"
REPLIES = BOT_DIR / "replies.yml"
SIGNS = BOT_DIR / "escalation" / "signs.yml"
WEBCHAT_BUNDLE = ROOT / "node_modules" / "rasa-webchat" / "lib" / "index.js"

CONFIG = ROOT / "config.yml"
DOMAIN = ROOT / "domain.yml"
ENDPOINTS = ROOT / "endpoints.yml"
CREDENTIALS = ROOT / "credentials.yml"

# The one override of the knowledge base: a deployment (or a test) that answers from another
# article build sets KNOWLEDGE_BASE; the NLU component, the actions and the web page all read it here.
KNOWLEDGE_BASE_VARIABLE = "KNOWLEDGE_BASE"


def knowledge_base_path() -> Path:
    return absolute(os.environ.get(KNOWLEDGE_BASE_VARIABLE) or KNOWLEDGE_BASE)


def absolute(path: os.PathLike | str) -> Path:
    """`path` as given when absolute, else relative to the repository root (never the cwd)."""
    path = Path(path)
    return path if path.is_absolute() else ROOT / path


# The endpoints file the running Rasa server reads (bot/stack.py writes one per stack and sets
# RASA_ENDPOINTS for every server): the retention job and erasure clean its tracker store.
ENDPOINTS_VARIABLE = "RASA_ENDPOINTS"


def endpoints_path() -> Path:
    return absolute(os.environ.get(ENDPOINTS_VARIABLE) or ENDPOINTS)
