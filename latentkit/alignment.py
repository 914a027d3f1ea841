"""Alignment of representations: do two layers (of one model or of two) represent the same inputs alike?

The paper questions the Platonic Representation Hypothesis (Huh et al., 2024; paper Sec. 3.1): components
may look alike across models while their arrangement differs. Two standard measures make "alike"
a number, computed on the activations of two layers for the *same* N inputs:

- :func:`mutual_knn` — mutual k-nearest-neighbour alignment, the measure of the Platonic Representation
  Hypothesis paper: for each input, the overlap of its k nearest neighbours in the two spaces
  (features L2-normalised first). 1 = identical neighbourhoods; chance is about k / (N - 1).
- :func:`cka` — centred kernel alignment with a linear kernel (Kornblith et al., 2019), in the biased
  (classic) form or the unbiased one (Song et al., 2012; Nguyen et al., 2021), which does not drift
  upwards for few inputs and many features. 1 = equal up to rotation and isotropic scaling; independent
  features give about 0 (unbiased) or a small positive number (biased).

Features are any arrays ``(N, ...)``; everything after the first axis is flattened, so a U-Net
activation ``(N, C, H, W)`` is compared as a vector of C * H * W numbers per input.
:func:`layer_activations` records them from a diffusion pipeline: every layer, for the same inputs
(prompts and initial noise) given to two models, at chosen denoising steps.

Used by notebook ``05_across_architectures``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


def _features(x, name: str) -> torch.Tensor:
    """(N, D) float64 tensor from an array or tensor of shape (N, ...)."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x.detach().cpu())
    if t.ndim < 2:
        raise ValueError(f"{name} must have shape (N, ...) with one row per input, got {tuple(t.shape)}")
    if not torch.is_floating_point(t):
        t = t.float()
    t = t.reshape(t.shape[0], -1).double()
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return t


def _pair(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _features(a, "a"), _features(b, "b")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"a and b must describe the same inputs: a has {x.shape[0]} rows, b has {y.shape[0]}"
        )
    return x, y


def mutual_knn(a, b, k: int = 10) -> float:
    """Mutual k-nearest-neighbour alignment of two representations of the same N inputs.

    Args:
        a: (N, ...) features of the inputs in the first space.
        b: (N, ...) features of the same inputs in the second space.
        k: neighbours per input (10 in the Platonic Representation Hypothesis paper's code).

    Returns:
        Mean over inputs of |kNN_a(i) ∩ kNN_b(i)| / k, in [0, 1]; chance is about k / (N - 1).
    """
    x, y = _pair(a, b)
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be between 1 and N - 1 = {n - 1}, got {k}")

    def neighbours(f: torch.Tensor) -> torch.Tensor:
        f = torch.nn.functional.normalize(f, dim=1)
        sim = f @ f.T  # (N, N) cosine similarity
        sim.fill_diagonal_(-torch.inf)  # an input is not its own neighbour
        return sim.topk(k, dim=1).indices  # (N, k)

    na, nb = neighbours(x), neighbours(y)
    hits = torch.zeros(n, n, dtype=torch.bool)
    hits.scatter_(1, na, True)
    overlap = hits.gather(1, nb).sum(1)  # (N,) neighbours shared by both spaces
    return float(overlap.double().mean() / k)


def mutual_knn_chance(n: int, k: int = 10) -> float:
    """Expected :func:`mutual_knn` of two unrelated representations of ``n`` inputs: k / (n - 1)."""
    return k / (n - 1)


def _hsic_unbiased(kx: torch.Tensor, ky: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC estimator (Song et al., 2012) of two (N, N) Gram matrices; needs N > 3."""
    n = kx.shape[0]
    kx, ky = kx.clone(), ky.clone()
    kx.fill_diagonal_(0)
    ky.fill_diagonal_(0)
    ones = torch.ones(n, dtype=kx.dtype)
    term = (kx * ky).sum()
    term = term + kx.sum() * ky.sum() / ((n - 1) * (n - 2))
    term = term - 2 * (ones @ kx @ ky @ ones) / (n - 2)
    return term / (n * (n - 3))


def cka(a, b, unbiased: bool = False) -> float:
    """Linear centred kernel alignment of two representations of the same N inputs.

    Args:
        a: (N, ...) features in the first space.
        b: (N, ...) features in the second space (any width).
        unbiased: use the unbiased HSIC estimator (needs N >= 4); recommended when N is small
            compared with the number of features.

    Returns:
        CKA in [0, 1] (the unbiased form can dip slightly below 0 for unrelated features).
    """
    x, y = _pair(a, b)
    n = x.shape[0]
    if unbiased:
        if n < 4:
            raise ValueError(f"unbiased CKA needs at least 4 inputs, got {n}")
        kx, ky = x @ x.T, y @ y.T  # (N, N) linear Gram matrices
        hxy, hxx, hyy = _hsic_unbiased(kx, ky), _hsic_unbiased(kx, kx), _hsic_unbiased(ky, ky)
        denom = torch.sqrt(hxx * hyy)
    else:
        if n < 2:
            raise ValueError(f"CKA needs at least 2 inputs, got {n}")
        x, y = x - x.mean(0), y - y.mean(0)
        if x.shape[1] * y.shape[1] <= n * n:
            # ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F): the feature-space form, cheap when D << N.
            hxy = torch.linalg.matrix_norm(y.T @ x) ** 2
            denom = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
        else:
            # <K, L>_F / (||K||_F ||L||_F) with the (N, N) Gram matrices of the centred features: the
            # same number, cheap when D >> N (a U-Net layer has thousands of features per input).
            kx, ky = x @ x.T, y @ y.T
            hxy = (kx * ky).sum()
            denom = torch.linalg.matrix_norm(kx) * torch.linalg.matrix_norm(ky)
    if denom <= 0:
        raise ValueError("CKA is undefined for a representation that is constant over the inputs")
    return float(hxy / denom)


def alignment_matrix(features_a: dict, features_b: dict, metric: str = "mutual_knn", **kwargs):
    """Alignment of every layer of one model with every layer of another, over the same inputs.

    Args:
        features_a: layer name -> (N, ...) features (e.g. activations of model A's layers).
        features_b: layer name -> (N, ...) features of model B (or of A again).
        metric: ``"mutual_knn"``, ``"cka"`` or ``"cka_unbiased"``.
        **kwargs: passed to the metric (``k`` for mutual_knn).

    Returns:
        A pandas DataFrame, rows = layers of A, columns = layers of B.
    """
    import pandas as pd

    metrics = {
        "mutual_knn": mutual_knn,
        "cka": cka,
        "cka_unbiased": lambda a, b, **kw: cka(a, b, unbiased=True, **kw),
    }
    if metric not in metrics:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(metrics)}")
    fn = metrics[metric]
    rows = {na: {nb: fn(fa, fb, **kwargs) for nb, fb in features_b.items()} for na, fa in features_a.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def layer_activations(
    pipe: Any,
    rows: Sequence[Mapping[str, Any]],
    steps: Sequence[int],
    layers: Sequence[str] | None = None,
    **call_kwargs: Any,
) -> dict[str, torch.Tensor]:
    """Each layer's image-stream activation at chosen denoising steps, for one batch of generations.

    Recorded by :func:`latentkit.run.record` (its hooks exist only during the call). Two pipelines given the
    same ``rows`` see the same inputs: the same prompts and, when their latents have the same shape
    (the two organisms share their VAE), the same initial noise.

    Args:
        pipe: a diffusers pipeline.
        rows: one dict of per-image arguments per input, e.g. ``{"prompt": caption, "seed": 3}`` (see
            :func:`latentkit.run.batch_inputs`).
        steps: step indices to record, 0 = the noisiest.
        layers: layer names (default: every layer of :func:`latentkit.layers.list_layers`).
        **call_kwargs: shared pipeline arguments (``num_inference_steps``, ``guidance_scale`` ...).

    Returns:
        ``{layer: (N, S, ...)}`` float32 on the CPU, ``S = len(steps)`` in the order given: ``(N, S, C,
        H, W)`` for a U-Net layer, ``(N, S, tokens, D)`` for a transformer block. With classifier-free
        guidance, the conditional half (the prompt's pass, the last rows of the batch).
    """
    from latentkit.layers import layer_names
    from latentkit.run import record

    names = list(layers) if layers is not None else layer_names(pipe)
    steps = [int(s) for s in steps]
    recorded = record(pipe, rows, dict.fromkeys(names, steps), **call_kwargs)  # (N, S, halves, ...)
    return {name: acts[:, :, -1] for name, acts in recorded.items()}
