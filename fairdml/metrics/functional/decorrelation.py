"""De-correlation of the class embedding e_c from an attribute embedding e_a: the quantities PARADE
(Dullerud et al., ICLR 2022) trains against and reports at test time.

Pure: tensors in, numbers out. They live here, beside `leakage.py`, because they are measures first: the
training objectives (`fairdml.mitigations.parade_objectives`) descend the same `correlation` and
`normalised_cross_covariance`, and the fresh projection network P that measures the de-correlation after
training is built like the adversary (`projection_network`), so the measure and the objective cannot drift
apart.

- `correlation`: how well P(e_c) predicts e_a, corr = mean_batch Σ_d (e_a ⊙ normalize(P(e_c)))_d² (MIC/DiVA).
- `normalised_cross_covariance`: the batch's CKA of two embeddings, linear or with a Gaussian kernel.
- `attribute_cka`: linear CKA of e_c with the attribute's one-hot codes (no fitting).
- `fresh_decorrelation`: how much of e_a a *fresh* P predicts from e_c on held-out classes.
- `measure_decorrelation`: the test report's `parade.<attribute>` figures, from the two above.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from fairdml.metrics.functional.leakage import held_out_split

CorrelationForm = Literal["squared", "cosine"]
CORRELATION_FORMS: tuple[str, ...] = get_args(CorrelationForm)


def projection_network(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """P: linear D→h, ReLU, linear h→D′ (MIC's adversarial projection; h = 512 there)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


def correlation(
    attribute_embeddings: torch.Tensor, predicted: torch.Tensor, form: CorrelationForm = "squared"
) -> torch.Tensor:
    """(B, D′), (B, D′) → (); both sides L2-normalised.

    "squared" (MIC/DiVA, the paper): mean_batch Σ_d (e_a ⊙ normalize(P(e_c)))_d². It is blind to signs, so
    a binary attribute whose two e_a clusters differ mostly in sign gives P little to predict.
    "cosine" (fairdml's option): mean_batch ⟨e_a, normalize(P(e_c))⟩, which sees the sign.
    """
    if form not in CORRELATION_FORMS:
        raise ValueError(f"correlation form must be one of {CORRELATION_FORMS}, got {form!r}")
    products = F.normalize(attribute_embeddings, dim=-1) * F.normalize(predicted, dim=-1)
    return (products.pow(2) if form == "squared" else products).sum(dim=-1).mean()


def normalised_cross_covariance(
    x: torch.Tensor, y: torch.Tensor, kernel: Literal["linear", "rbf"] = "linear"
) -> torch.Tensor:
    """CKA of x (N, Dx) and y (N, Dy) over the batch; the denominator carries no gradient, so an encoder
    that descends it cannot lower it by reshaping its own spread.

    "linear": ‖C_xy‖²_F / (‖C_xx‖_F ‖C_yy‖_F), dependence through second moments only. "rbf": x through a
    Gaussian kernel (bandwidth: the median squared distance, held constant), y linear, so any dependence of
    x on y counts (HSIC, Gretton et al. 2005), not only the groups' mean difference.
    """
    x, y = x - x.mean(dim=0), y - y.mean(dim=0)
    if kernel == "linear":
        cross = (x.T @ y).pow(2).sum()
        scale = ((x.T @ x).pow(2).sum() * (y.T @ y).pow(2).sum()).sqrt().detach()
        return cross / scale.clamp_min(1e-12)
    distances = torch.cdist(x, x).pow(2)
    gram_x = torch.exp(-distances / distances.detach().median().clamp_min(1e-12))
    gram_x = gram_x - gram_x.mean(dim=0) - gram_x.mean(dim=1, keepdim=True) + gram_x.mean()  # H K H
    gram_y = y @ y.T  # already centred
    cross = (gram_x * gram_y).sum()
    scale = ((gram_x * gram_x).sum() * (gram_y * gram_y).sum()).sqrt().detach()
    return cross / scale.clamp_min(1e-12)


def attribute_cka(class_embeddings: torch.Tensor, codes: torch.Tensor) -> float:
    """Linear CKA of e_c with the attribute's one-hot codes: the share of e_c's covariance that the groups'
    mean differences explain (0 = equal group means, 1 = e_c varies only between groups). No fitting, so
    on the test split (unseen classes) it needs no held-out part of its own."""
    members = F.one_hot(codes.long()).to(class_embeddings.dtype)
    return float(normalised_cross_covariance(F.normalize(class_embeddings.float(), dim=-1), members.float()))


def fresh_decorrelation(
    class_embeddings: torch.Tensor,
    attribute_embeddings: torch.Tensor,
    *,
    labels: torch.Tensor | None = None,
    groups: torch.Tensor | None = None,
    hidden: int = 512,
    steps: int = 1000,
    lr: float = 1e-3,
    test_fraction: float = 0.5,
    seed: int = 0,
    form: CorrelationForm = "squared",
) -> dict[str, Any]:
    """The de-correlation achieved: how much of e_a a *fresh* P predicts from e_c on held-out samples.

    A fresh P, not the training adversary: adversarial removal can leave what a new predictor finds
    (Elazar & Goldberg 2018). Held out by class when class `labels` and attribute `groups` are given
    (`held_out_split`): an attribute that is constant within a class is otherwise predicted from the class
    alone, and every class-separating e_c would look fully correlated. Each P is trained full-batch with
    Adam on one part and scored (corr) on the rest. Three are trained, with the same recipe:
      `correlation` from e_c; `chance` from a constant (the best guess knowing nothing of the sample);
      `ceiling` from e_a itself (the most this form of corr can reach for these e_a).
    `shared` = (correlation − chance) / (ceiling − chance): 1 = e_c tells P all it could know of e_a,
    0 = nothing beyond chance. Comparable across runs, unlike raw corr, whose range depends on e_a.
    """
    class_embeddings, attribute_embeddings = class_embeddings.float(), attribute_embeddings.float()
    if groups is not None:
        classes = None if labels is None else labels.cpu().numpy()
        train, test, split = held_out_split(groups.cpu().numpy(), classes, test_fraction=test_fraction, seed=seed)
        train, test = torch.as_tensor(train), torch.as_tensor(test)
    else:
        order = torch.randperm(len(class_embeddings), generator=torch.Generator().manual_seed(seed))
        n_test = max(1, round(test_fraction * len(order)))
        test, train, split = order[:n_test], order[n_test:], "sample"
    inputs = {
        "correlation": class_embeddings,
        "chance": torch.ones(len(class_embeddings), 1),
        "ceiling": attribute_embeddings,
    }
    scores: dict[str, Any] = {
        name: _fresh_projection_score(values, attribute_embeddings, train, test, hidden, steps, lr, seed, form)
        for name, values in inputs.items()
    }
    spread = scores["ceiling"] - scores["chance"]
    scores["shared"] = (scores["correlation"] - scores["chance"]) / spread if spread > 1e-8 else float("nan")
    scores["split"] = split
    return scores


def _fresh_projection_score(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    train: torch.Tensor,
    test: torch.Tensor,
    hidden: int,
    steps: int,
    lr: float,
    seed: int,
    form: CorrelationForm,
) -> float:
    """corr on `test` of a P trained `steps` full-batch Adam steps on `train` (same seed for every input)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        projection = projection_network(inputs.shape[1], hidden, targets.shape[1])
    optimizer = torch.optim.Adam(projection.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        (-correlation(targets[train], projection(inputs[train]), form)).backward()
        optimizer.step()
    with torch.no_grad():
        return float(correlation(targets[test], projection(inputs[test]), form))


def measure_decorrelation(
    class_embeddings: torch.Tensor,
    attribute_embeddings: torch.Tensor,
    labels: torch.Tensor,
    groups: torch.Tensor,
    *,
    steps: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """One attribute's de-correlation figures for the test report, held out by class.

    `decorrelation`, `decorrelation_chance`, `decorrelation_ceiling`, `shared`: `fresh_decorrelation` with
    MIC's squared corr; `shared_cosine`: its `shared` with the sign-aware corr (the squared one misses a
    binary attribute encoded as a sign); `linear_cka`: `attribute_cka`; `split`: how P was held out.
    Works inside a test hook too: the fresh Ps train with gradients on copies of the (inference) tensors.
    """
    held_out = {"labels": labels, "groups": groups, "seed": seed, "steps": steps}
    with torch.enable_grad(), torch.inference_mode(False):
        result = fresh_decorrelation(class_embeddings.clone(), attribute_embeddings.clone(), **held_out)
        signed = fresh_decorrelation(class_embeddings.clone(), attribute_embeddings.clone(), form="cosine", **held_out)
    return {
        "decorrelation": result["correlation"],
        "decorrelation_chance": result["chance"],
        "decorrelation_ceiling": result["ceiling"],
        "shared": result["shared"],
        "shared_cosine": signed["shared"],
        "linear_cka": attribute_cka(class_embeddings, groups),
        "split": result["split"],
    }
