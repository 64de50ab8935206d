"""The fine-tuning experiment's pieces (bot/devtools/embedding_finetune.py): its loss and its k-NN vote."""
import numpy as np
import torch

from bot.devtools.embedding_finetune import knn_classifier, supervised_contrastive_loss


def test_the_loss_is_lower_when_questions_of_one_intent_lie_together():
    labels = torch.tensor([0, 0, 1, 1])
    grouped = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    assert supervised_contrastive_loss(grouped, labels, 0.1) < supervised_contrastive_loss(mixed, labels, 0.1)


def test_a_batch_without_partners_gives_no_loss_and_a_finite_gradient():
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = supervised_contrastive_loss(embeddings, torch.tensor([0, 1]), 0.05)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(embeddings.grad).all()


def test_knn_votes_by_cosine_over_the_k_nearest():
    vectors = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
    labels = ["rest", "rest", "exercise", "exercise"]
    query = np.array([[0.7, 0.714]])
    assert knn_classifier(vectors, labels, 1)(query) == ["exercise"]
    assert knn_classifier(vectors, labels, 4)(np.array([[0.95, 0.31]])) == ["rest"]
