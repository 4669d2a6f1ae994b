"""PARADE's training objectives: what the projection network P and the encoder descend each batch, and the
strength schedule (Dullerud et al., ICLR 2022; the game as in MIC/DiVA), and the check of `Parade`'s
options against these choices (`check_options`).

Apart from the callback so that each objective is a function of tensors, checked against hand-computed
gradients without a Trainer; beside it (not in `fairdml.metrics`) because these are training maths, built
on the gradient-reversal layer, and the callback is their only user. What they descend (`correlation`,
`normalised_cross_covariance`) is defined once, with the measures, in `fairdml.metrics.functional.decorrelation`.

Strength parametrisation (the one knob, `strength` = ρ′): the correlation is a **sum over dimensions**,
    corr = mean_batch Σ_d ( e_a ⊙ normalize(P(e_c)) )_d² ,   L_dec = −ρ′ · corr .
MIC/DiVA/the paper write it as a mean over dimensions with weight ρ; both are the same when ρ′ = ρ / D
(D = attribute embedding size), e.g. ρ = 2048 at D = 128 is ρ′ = 16.

How the two players see L_dec: P descends −corr with its own learning rate (`projection_lr`), whatever ρ′
is, so the adversary is trained from step 0 even while ρ′ warms up; the encoder receives ρ′(t) times the
reversed gradient, i.e. it descends +ρ′ · corr. With Adam this equals MIC's single weighted term.

`encoder_objective: confusion` (fairdml's option, not the paper's) changes only what the encoder descends:
instead of P's reversed loss (whose minimum, for the encoder, is a P that is confidently *wrong*, so the
attribute stays in e_c with its sign flipped), ρ′ times the spread of P's normalised predictions over the
batch, 1 − ‖mean_b normalize(P(e_c))‖², which is 0 exactly when P predicts the same for everyone and so
knows nothing of the sample (domain confusion, Tzeng et al. 2015, in PARADE's regression form).
`encoder_objective: covariance` (fairdml's option) drops the game for the encoder: it descends ρ′ times the
batch's linear CKA of e_c and ē_a, ‖C_cā‖²_F / (‖C_cc‖_F ‖C_āā‖_F) in [0, 1], where ē_a is e_a averaged over
the batch's samples with the same attribute value (the attribute's part of e_a) and the norms in the
denominator are held constant, so the encoder cannot lower it by reshaping its own spread. Linear
dependence, computed in closed form every batch: there is no lagging adversary to dodge.
`kernel_covariance` is the same with a Gaussian kernel on e_c (any dependence, HSIC). P is still trained
(on detached embeddings) and logged with every objective, and measures the de-correlation at test time.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from fairdml.losses import create_loss, create_miner
from fairdml.metrics.functional.decorrelation import (
    CORRELATION_FORMS,
    CorrelationForm,
    correlation,
    normalised_cross_covariance,
)
from fairdml.mitigations.gradient_reversal import reverse_gradient
from fairdml.utils.rules import Rule, above, at_least, one_of, optional, rule_problems

Schedule = Literal["constant", "linear", "cosine"]
EncoderObjective = Literal["reversal", "confusion", "covariance", "kernel_covariance"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
ENCODER_OBJECTIVES: tuple[str, ...] = get_args(EncoderObjective)


def scheduled_strength(strength: float, schedule: Schedule, warmup_steps: int, step: int) -> float:
    """ρ′(step): constant; or ramped from 0 to ρ′ over `warmup_steps`, linearly or along a half cosine."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule == "constant" or warmup_steps <= 0:
        return float(strength)
    progress = min(max(step, 0) / warmup_steps, 1.0)
    if schedule == "linear":
        return float(strength) * progress
    return float(strength) * 0.5 * (1.0 - math.cos(math.pi * progress))


def decorrelation_terms(
    class_embeddings: torch.Tensor,
    attribute_embeddings: torch.Tensor,
    projection: nn.Module,
    strength: float,
    reverse_attribute_branch: bool = True,
    form: CorrelationForm = "squared",
    objective: EncoderObjective = "reversal",
    codes: torch.Tensor | None = None,
    num_values: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the de-correlation loss, raw corr) for e_c (B, D), e_a (B, D′). P always descends −corr.

    "reversal" (MIC): the encoder(s) get ρ′ × the reversed gradient of −corr. `reverse_attribute_branch`:
    MIC reverses both branches (the attribute head is also pushed away from what P predicts); False
    detaches e_a here, so only e_c is de-correlated.
    "confusion": P learns on detached embeddings; e_c descends ρ′ × the spread of the predictions of a
    frozen copy of P (see the module docstring); e_a is left alone.
    "covariance": P learns on detached embeddings; e_c descends ρ′ × linear CKA(e_c, ē_a) (module docstring),
    ē_a = e_a averaged over the batch's samples with the same attribute value (`codes`, (B,)), so that only
    the attribute's part of e_a counts, not what e_a happens to share with the class. `num_values`: how many
    values the attribute has (codes < num_values); None reads the batch's largest code, a host sync.
    "kernel_covariance": the same with a Gaussian kernel on e_c (`normalised_cross_covariance`).
    """
    if objective not in ENCODER_OBJECTIVES:
        raise ValueError(f"encoder_objective must be one of {ENCODER_OBJECTIVES}, got {objective!r}")
    class_in = F.normalize(class_embeddings, dim=-1)
    target = F.normalize(attribute_embeddings, dim=-1)
    if objective == "reversal":
        class_in = reverse_gradient(class_in, strength)
        target = reverse_gradient(target, strength) if reverse_attribute_branch else target.detach()
        corr = correlation(target, projection(class_in), form)
        return -corr, corr.detach()
    # The other objectives: P learns on detached embeddings; the encoder's term is separate and weighted.
    target = target.detach()
    corr = correlation(target, projection(class_in.detach()), form)
    if objective == "confusion":
        frozen = {name: parameter.detach() for name, parameter in projection.named_parameters()}
        predicted = F.normalize(torch.func.functional_call(projection, frozen, (class_in,)), dim=-1)
        encoder_term = 1.0 - predicted.mean(dim=0).pow(2).sum()  # spread of P's predictions
    else:
        if codes is not None:
            target = _group_means(target, codes, num_values)
        kernel = "rbf" if objective == "kernel_covariance" else "linear"
        encoder_term = normalised_cross_covariance(class_in, target, kernel)
    return strength * encoder_term - corr, corr.detach()


def _group_means(values: torch.Tensor, codes: torch.Tensor, num_values: int | None = None) -> torch.Tensor:
    """Each row of `values` (B, D) replaced by the mean of the rows with the same code ((B,) integers).

    A known `num_values` fixes the one-hot width without reading the codes' maximum on the host (on a GPU
    that read waits for every queued kernel); values absent from the batch are zero columns, which change
    nothing.
    """
    members = F.one_hot(codes.long(), num_values if num_values is not None else -1).to(values.dtype)  # (B, values)
    return members @ ((members.T @ values) / members.sum(dim=0).clamp_min(1)[:, None])


def fit_projection(
    projection: nn.Module,
    optimizer: torch.optim.Optimizer,
    class_embeddings: torch.Tensor,
    attribute_embeddings: torch.Tensor,
    steps: int,
    form: CorrelationForm = "squared",
) -> None:
    """`steps` extra updates of P (descending −corr) on this batch's detached embeddings.

    Why: with one update per batch, P lags the encoder, which then only dodges the current P while the
    attribute stays in e_c for a fresh P to find (a GAN-style k-step adversary keeps P fitted). Gradients
    are taken with `autograd.grad` (no DDP hooks fire, the main optimiser's `.grad` stays untouched) and
    averaged over processes by hand, so P stays identical on every rank.
    """
    parameters = list(projection.parameters())
    inputs = F.normalize(class_embeddings.detach(), dim=-1)
    targets = attribute_embeddings.detach()
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    for _ in range(steps):
        loss = -correlation(targets, projection(inputs), form)
        gradients = torch.autograd.grad(loss, parameters)
        for parameter, gradient in zip(parameters, gradients, strict=True):
            if distributed:
                torch.distributed.all_reduce(gradient)
                gradient /= torch.distributed.get_world_size()
            parameter.grad = gradient
        optimizer.step()
        for parameter in parameters:
            parameter.grad = None


_RULES = (
    Rule("schedule", one_of(*SCHEDULES), f"one of {SCHEDULES}"),
    Rule("correlation", one_of(*CORRELATION_FORMS), f"one of {CORRELATION_FORMS}"),
    Rule("encoder_objective", one_of(*ENCODER_OBJECTIVES), f"one of {ENCODER_OBJECTIVES}"),
    Rule("warmup_steps", at_least(0), ">= 0"),
    Rule("projection_hidden", at_least(1), ">= 1"),
    Rule("projection_lr", above(0), "> 0"),
    Rule("attribute_embedding_dim", at_least(1), ">= 1"),
    Rule("attribute_loss_weight", at_least(0), ">= 0"),
    Rule("attribute_lr", optional(above(0)), "None or > 0"),
    Rule("projection_steps", at_least(1), ">= 1"),
    Rule("measure_steps", at_least(1), ">= 1"),
)


def check_options(options: dict[str, Any], attributes: list[str], strengths: list) -> None:
    """`Parade`'s arguments: every invalid one at once, in one ValueError, at construction (not at a batch)."""
    problems = rule_problems(options, _RULES)
    if not attributes:
        problems.append("attributes is empty; name at least one sensitive attribute")
    if len(strengths) != len(attributes):
        problems.append(f"strength={options['strength']!r} must be one value, or one per attribute {attributes}")
    elif not all(at_least(0)(s) for s in strengths):
        problems.append(f"strength={options['strength']!r} must be >= 0")
    counts = options.get("attribute_value_counts")
    if counts is not None and (len(counts) != len(attributes) or not all(at_least(2)(c) for c in counts)):
        problems.append(f"attribute_value_counts={counts!r} must be None or one whole number >= 2 per attribute")
    if not problems:  # build the attribute loss and miner once, so an unknown *_kwargs key fails now
        try:
            loss_kwargs = options["attribute_loss_kwargs"] or {}
            create_loss(options["attribute_loss"], 2, int(options["attribute_embedding_dim"]), **loss_kwargs)
            create_miner(options["attribute_miner"], **(options["attribute_miner_kwargs"] or {}))
        except (TypeError, ValueError, KeyError) as error:
            problems.append(f"attribute_loss={options['attribute_loss']!r} with its kwargs, or the miner: {error}")
    if problems:
        raise ValueError(f"Parade: {'; '.join(problems)}")
