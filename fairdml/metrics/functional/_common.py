"""Shared input checks and the warning category of the finDML metrics."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# 256 MiB: large enough that chunking costs little, small enough for a laptop or a busy GPU.
DEFAULT_MEMORY_BUDGET_BYTES = 256 * 2**20


class FairnessMetricWarning(UserWarning):
    """An edge case got a defined answer (None, clamped k, excluded queries); the report lists it too."""


def warn(message: str) -> None:
    """Emit a `FairnessMetricWarning`; `fairness_report` also collects these into its "warnings" list."""
    warnings.warn(message, FairnessMetricWarning, stacklevel=3)


def as_tensor(values: Tensor | np.ndarray, name: str) -> Tensor:
    """Accept tensors or numpy arrays alike, so the audit path (npz) and training path share code."""
    if isinstance(values, Tensor):
        return values
    try:
        return torch.as_tensor(np.asarray(values))
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a tensor or numeric array, got {type(values).__name__}") from error


def compute_dtype(embeddings: Tensor) -> torch.dtype:
    """float64 stays float64; everything else (float16, bfloat16, ints) is computed in float32."""
    return torch.float64 if embeddings.dtype == torch.float64 else torch.float32


def check_embeddings(embeddings: Tensor) -> Tensor:
    """Return (N, D) floating embeddings in the compute dtype; reject NaN/inf, naming how many rows."""
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {tuple(embeddings.shape)}")
    if embeddings.shape[0] == 0:
        raise ValueError("embeddings are empty (N = 0): nothing to evaluate")
    if embeddings.shape[1] == 0:
        raise ValueError(f"embeddings have no dimensions (shape {tuple(embeddings.shape)}): D must be at least 1")
    embeddings = embeddings.to(compute_dtype(embeddings))
    bad_rows = (~torch.isfinite(embeddings)).any(dim=1)
    n_bad = int(bad_rows.sum())
    if n_bad:
        first = bad_rows.nonzero().flatten()[:5].tolist()
        raise ValueError(
            f"embeddings contain NaN or inf in {n_bad} of {embeddings.shape[0]} rows (first rows: {first}); "
            "all values must be finite"
        )
    return embeddings


def check_labels(labels: Tensor, n: int, name: str = "labels") -> Tensor:
    """Return (N,) int64 labels on the caller's device, with an error naming a shape or dtype problem."""
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match the embeddings, got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"{name} must be integers, got dtype {labels.dtype}")
    return labels.long()


NORM_RANGE = (1e-12, 1e12)  # row norms outside it are normalised exactly, with a warning (a likely upstream bug)


def l2_normalise(embeddings: Tensor) -> Tensor:
    """Unit-normalise rows at any scale; a zero row stays zero (with a warning) rather than becoming NaN.

    Rows whose norm lies in `NORM_RANGE` get `F.normalize` (so ordinary reports are unchanged). The others are
    first divided by their largest absolute value, so their norm is taken of numbers in [-1, 1]: `F.normalize`
    leaves rows of norm below its eps (1e-12) unnormalised, and in float32 the squares of values above ~1e19
    overflow, which made the same embeddings times 1e-15 or 1e19 find other neighbours than times 1.
    """
    zero = (embeddings.amax(dim=1) == 0) & (embeddings.amin(dim=1) == 0)
    n_zero = int(zero.sum())
    if n_zero:
        warn(f"{n_zero} embedding rows have zero norm; they are left as zero vectors")
    norms = embeddings.norm(dim=1)  # inf when the squares overflow, 0 when they underflow
    outside = ~zero & ~((norms >= NORM_RANGE[0]) & (norms <= NORM_RANGE[1]))
    unit = F.normalize(embeddings, dim=1)
    if not bool(outside.any()):
        return unit
    rows = embeddings[outside]
    scale = rows.abs().amax(dim=1, keepdim=True)
    scaled = rows / scale
    lengths = scaled.norm(dim=1, keepdim=True)  # >= 1
    true_norms = scale.squeeze(1).double() * lengths.squeeze(1).double()
    warn(
        f"{int(outside.sum())} embedding rows have norms outside [{NORM_RANGE[0]:g}, {NORM_RANGE[1]:g}] (from "
        f"{true_norms.min().item():.3g} to {true_norms.max().item():.3g}); normalised exactly, but such a scale "
        "usually means a bug upstream"
    )
    unit[outside] = scaled / lengths
    return unit


def encode_groups(
    groups: Tensor | np.ndarray | Sequence, group_names: Sequence[str] | None, n: int
) -> tuple[Tensor, list[str]]:
    """Map groups to codes 0..G-1 indexing the returned names.

    Integer groups with `group_names`: code i is group_names[i]. String groups with `group_names`: each
    value must be one of the names. Without names: the sorted distinct values, as strings.
    """
    array = groups.detach().cpu().numpy() if isinstance(groups, Tensor) else np.asarray(groups)
    if array.shape != (n,):
        raise ValueError(f"groups must have shape ({n},) to match the embeddings, got {array.shape}")
    if group_names is not None:
        group_names = [str(name) for name in group_names]
        if len(set(group_names)) != len(group_names):
            raise ValueError(f"group_names has duplicates: {group_names}")
    if array.dtype.kind in "iub":
        if group_names is None:
            distinct, codes = np.unique(array, return_inverse=True)
            return torch.as_tensor(codes.reshape(-1), dtype=torch.long), [str(v) for v in distinct]
        out_of_range = (array < 0) | (array >= len(group_names))
        if out_of_range.any():
            raise ValueError(
                f"group codes must be in [0, {len(group_names)}) to index group_names {group_names}; "
                f"found {sorted(set(array[out_of_range].tolist()))[:5]}"
            )
        return torch.as_tensor(array, dtype=torch.long), group_names
    if array.dtype.kind not in "USO":
        raise ValueError(f"groups must be integer codes or strings, got dtype {array.dtype}")
    values = array.astype(str)
    if group_names is None:
        distinct, codes = np.unique(values, return_inverse=True)
        return torch.as_tensor(codes.reshape(-1), dtype=torch.long), [str(v) for v in distinct]
    unknown = sorted(set(values.tolist()) - set(group_names))
    if unknown:
        raise ValueError(f"groups contain values not in group_names {group_names}: {unknown[:5]}")
    position = {name: i for i, name in enumerate(group_names)}
    return torch.as_tensor([position[v] for v in values.tolist()], dtype=torch.long), group_names
