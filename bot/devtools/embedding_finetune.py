"""An experiment, not part of the bot: does fine-tuning the embedding model on the training
questions help? (README "Accuracy", the methods table.)

The model is tuned with a supervised contrastive loss (questions of the same intent pulled together,
the others in the batch pushed apart; the word embeddings, 96 M of the 118 M parameters, frozen),
then scored by k-nearest-neighbour voting over the training questions on both dev sets, before
tuning and after each epoch. `--save DIR` keeps the tuned model, so that DIET can be trained on it:
point `model:` of the featurizer in a copy of config.yml to DIR and run `rasa train nlu`.

    .venv/bin/python -m bot.devtools.embedding_finetune --epochs 3 [--save /tmp/e5-tuned]
"""
from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
from rasa.shared.nlu.training_data.loading import load_data
from sentence_transformers import SentenceTransformer

from bot import paths
from bot.devtools.evaluation import load_dev_set, load_second_dev_set
from bot.knowledge_base import KnowledgeBase
from bot.knowledge_base.store import load_knowledge_base

QUERY_PROMPT = "query"


def training_questions() -> List[Tuple[str, str]]:
    """(text, intent) of every NLU training example (`data/nlu/`, the article's built by `make build`)."""
    return [(m.get("text"), m.get("intent")) for m in load_data(str(paths.NLU_DATA_DIR)).intent_examples]


def supervised_contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Khosla et al. (2020): each example's mean log-probability of its same-label partners among
    the batch; examples without a partner in the batch do not count."""
    normalized = torch.nn.functional.normalize(embeddings, dim=-1)
    size = len(labels)
    itself = torch.eye(size, dtype=torch.bool)
    similarity = (normalized @ normalized.T / temperature).masked_fill(itself, float("-inf"))
    partners = (labels[:, None] == labels[None, :]) & ~itself
    log_probability = similarity - torch.logsumexp(similarity, dim=1, keepdim=True)
    has_partner = partners.any(dim=1)
    if not has_partner.any():
        return embeddings.sum() * 0.0
    per_example = log_probability.masked_fill(~partners, 0.0).sum(dim=1)[has_partner] / partners.sum(dim=1)[has_partner]
    return -per_example.mean()


def fine_tune_epoch(model: SentenceTransformer, questions: Sequence[Tuple[str, str]], optimizer: torch.optim.Optimizer,
                    batch_size: int, temperature: float, seed: int) -> float:
    """One pass over the questions in shuffled batches; the mean loss."""
    intents = sorted({intent for _, intent in questions})
    order = list(questions)
    random.Random(seed).shuffle(order)
    prompt = (model.prompts or {}).get(QUERY_PROMPT, "")
    model.train()
    losses = []
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        features = model.preprocess([prompt + text for text, _ in batch])
        labels = torch.tensor([intents.index(intent) for _, intent in batch])
        loss = supervised_contrastive_loss(model(features)["sentence_embedding"], labels, temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return float(np.mean(losses))


def knn_classifier(vectors: np.ndarray, labels: Sequence[str], k: int) -> Callable[[np.ndarray], List[str]]:
    """Intent of each query vector by its k nearest training vectors, votes weighted by cosine."""
    def predict(queries: np.ndarray) -> List[str]:
        predicted = []
        for row in queries @ vectors.T:
            votes: Dict[str, float] = defaultdict(float)
            for index in np.argsort(-row)[:k]:
                votes[labels[index]] += float(row[index])
            predicted.append(max(votes, key=votes.get))
        return predicted
    return predict


@dataclass(frozen=True)
class DevScores:
    set_1_article: Tuple[int, int]
    set_1_other: Tuple[int, int]
    set_2_questions: Tuple[int, int]

    def __str__(self) -> str:
        def part(pair: Tuple[int, int]) -> str:
            return f"{pair[0]}/{pair[1]}"
        return (f"set 1 {part(self.set_1_article)} (others {part(self.set_1_other)}), "
                f"set 2 {part(self.set_2_questions)}")


def score_dev_sets(kb: KnowledgeBase, predict: Callable[[Sequence[str]], List[str]]) -> DevScores:
    """Top-1 of predicted intents: set 1's article questions must get an accepted intent and its
    others no article item; set 2's single questions must get their item (no item when `none`)."""
    first = load_dev_set()
    second = [case for case in load_second_dev_set() if case.kind == "question"]
    got_first = predict([question.text for question in first])
    article = [(got, q) for got, q in zip(got_first, first) if kb.item(q.intent)]
    others = [(got, q) for got, q in zip(got_first, first) if not kb.item(q.intent)]
    got_second = predict([case.turns[0] for case in second])
    return DevScores(
        (sum(got in q.accepted for got, q in article), len(article)),
        (sum(not kb.item(got) for got, _ in others), len(others)),
        (sum((got if kb.item(got) else None) == case.item for got, case in zip(got_second, second)), len(second)),
    )


def knn_scores(model: SentenceTransformer, kb: KnowledgeBase, questions: Sequence[Tuple[str, str]], k: int) -> DevScores:
    def encode(texts: Sequence[str]) -> np.ndarray:
        return model.encode(list(texts), prompt_name=QUERY_PROMPT, normalize_embeddings=True, batch_size=64)

    classify = knn_classifier(encode([text for text, _ in questions]), [intent for _, intent in questions], k)
    return score_dev_sets(kb, lambda texts: classify(encode(texts)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(paths.EMBEDDING_MODEL))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("-k", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--save", help="folder to save the tuned model in")
    args = parser.parse_args()
    torch.manual_seed(0)
    kb = load_knowledge_base()
    questions = training_questions()
    model = SentenceTransformer(args.model, device="cpu")
    print(f"{len(questions)} training questions, {len({i for _, i in questions})} intents")
    for k in args.k:
        print(f"before tuning, k={k}: {knn_scores(model, kb, questions, k)}", flush=True)
    for parameter in model[0].auto_model.embeddings.parameters():
        parameter.requires_grad = False
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    for epoch in range(1, args.epochs + 1):
        started = time.time()
        loss = fine_tune_epoch(model, questions, optimizer, args.batch_size, args.temperature, seed=epoch)
        print(f"epoch {epoch}: loss {loss:.3f}, {time.time() - started:.0f} s", flush=True)
        for k in args.k:
            print(f"  k={k}: {knn_scores(model, kb, questions, k)}", flush=True)
    if args.save:
        model.save(args.save)
        print(f"saved: {args.save}")


if __name__ == "__main__":
    main()
