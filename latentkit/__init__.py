"""latentkit: run the arguments of "The Evolving Nature of Latent Spaces: From GANs to Diffusion".

The package mirrors the paper's concepts, one module each:

- :mod:`latentkit.world`: the shapes world, images whose factors are known;
- :mod:`latentkit.probes`: read those factors back from any image;
- :mod:`latentkit.spaces`: a *space* (sample, perturb, interpolate, decode), for any candidate latent space;
- :mod:`latentkit.properties`: the paper's four properties (density, smoothness, organization, relevance)
  as measurements with confidence intervals and Fig. 4 verdicts;
- :mod:`latentkit.models`: the model organisms (autoencoder, VAE, GAN, miniature Stable Diffusion), the
  real pipelines, and their denoisers as published, buildable without weights (``models.architectures``);
- :mod:`latentkit.layers`: name the layers of a diffusion model and hook them, temporarily;
- :mod:`latentkit.run`: run a pipeline with hooks (patch layers, track steps, record activations): the one
  way every experiment below calls a model;
- :mod:`latentkit.injection`: the paper's layer-injection experiment (Sec. 3.1, Fig. 5);
- :mod:`latentkit.aspects`: what each injected layer changes, read by the probes, with intervals;
- :mod:`latentkit.candidates`: the candidate latent spaces of a diffusion model (Sec. 3, Fig. 4);
- :mod:`latentkit.synthesis`: strict against broad synthesis, one index for every model (Sec. 4);
- :mod:`latentkit.similarity`: image-similarity measures for images with no known factors;
- :mod:`latentkit.tiny`: tiny random builds of every architecture the paper names, for tests;
- :mod:`latentkit.alignment`: mutual k-NN and CKA between layers, across models (Sec. 3.1, PRH);
- :mod:`latentkit.roles`: layer roles from valid images, with intervals; places across architectures;
- :mod:`latentkit.findings`: what others published about the real models' layers, with sources;
- :mod:`latentkit.figures`: heat maps, injection grids, role diagrams, saved as PNG and PDF;
- :mod:`latentkit.explore`: the notebooks' widgets (pure callbacks with static fallbacks);
- :mod:`latentkit.batch`, :mod:`latentkit.sweeps`, :mod:`latentkit.cli`: batch runs (local, Dask, SLURM).

Submodules are imported lazily (``latentkit.world`` works after ``import latentkit``), so importing the
package does no work and loads no model.
"""

from __future__ import annotations

import contextlib
import importlib
import numbers
import random

__version__ = "0.1.0"

# Every submodule, so that ``latentkit.<name>`` works for each (a test checks this list against the files).
_SUBMODULES = {
    "batch",
    "book",
    "candidates",
    "cli",
    "explore",
    "findings",
    "fig4",
    "inversion",
    "roles",
    "run",
    "sweeps",
    "synthesis",
    "world",
    "probes",
    "figures",
    "paths",
    "tokenizer",
    "layers",
    "injection",
    "similarity",
    "tiny",
    "alignment",
    "spaces",
    "properties",
    "quality",
    "reuse",
    "aspects",
    "models",
    "recipes",
    "notebooks",
    "verdicts",
}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a notebook re-runs identically.

    Python's string hashing is fixed when the interpreter starts, so it cannot be seeded here (setting
    ``PYTHONHASHSEED`` now would only affect child processes); nothing in latentkit depends on it.

    Args:
        seed: any non-negative integer.
    """
    import numpy as np

    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # the world and its probes' numpy parts work without torch
        return
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def resolve_device(device: str = "auto") -> str:
    """Turn a notebook's ``device`` parameter into a torch device string.

    Args:
        device: ``"auto"`` (CUDA when torch sees a GPU, else Apple MPS, else CPU), or any torch device
            string such as ``"cpu"`` or ``"cuda:1"``.
    """
    import torch

    if device != "auto":
        torch.device(device)  # raises a clear torch error for a malformed string
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was asked for, but torch sees no CUDA GPU here "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda is not None}). "
                "Use device='auto' or 'cpu', or install a CUDA build of torch (see README, 'Using a GPU')."
            )
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


#: The most threads ``set_cpu_threads("auto")`` takes: the organisms' layers are small, so beyond a few
#: threads the work per thread is too little to gain from more.
MAX_AUTO_THREADS = 4


def set_cpu_threads(threads: int | str = "auto") -> int:
    """Turn a notebook's ``cpu_threads`` parameter into torch's CPU thread count; returns the count set.

    Args:
        threads: ``"auto"``: the cores this process may run on (its CPU affinity, which a cluster's job
            limits), at most :data:`MAX_AUTO_THREADS`; or a whole number >= 1. On a CPU that other work
            keeps busy, ask for fewer threads than cores (1 on a shared 2-core machine): a torch thread
            that waits for a core stalls the others at every operation.
    """
    import os

    import torch

    if threads == "auto":
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = max(1, min(MAX_AUTO_THREADS, available or 1))
    elif isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise ValueError(f"cpu_threads must be 'auto' or a whole number >= 1, got {threads!r}")
    torch.set_num_threads(int(threads))
    return int(threads)


#: Whether :func:`autocast` may use bf16. :func:`full_precision` turns it off for a block of code; set it to
#: False for fp32 throughout, e.g. to compare two ways of batching the same images bit for bit (bf16 kernels
#: round differently with the batch's layout).
BF16 = True


@contextlib.contextmanager
def full_precision():
    """fp32 inside the block, whatever :func:`autocast` would do: for finite differences, which bf16's
    three significant digits drown (smoothness compares images 1e-4 apart along a path: under bf16 the
    fitted autoencoder's straightness fell from 0.24 to 0.02, measured)."""
    global BF16
    before, BF16 = BF16, False
    try:
        yield
    finally:
        BF16 = before


def autocast(device: str):
    """bfloat16 autocast where it pays: CUDA, and CPUs with native bf16 (AVX-512 BF16 or AMX).

    Measured on this project's 2-core AMD EPYC (one thread): the strict-sense organisms' convolutional
    stacks train x1.8 faster under bf16 autocast (0.29 -> 0.16 s per autoencoder step, batch 64), and the
    picture codec decodes x2.2 faster (with channels_last: 10.8 -> 4.8 s for 512 images; pixels within
    4 of 255, mean 0.15, and not one of the 512 changes its in-distribution verdict); the U-Net organism
    gains only x1.04, so its recipe does not use it. Elsewhere (a CPU without native bf16, where bf16 is
    emulated and slower; Apple MPS), or with :data:`BF16` False, it is a no-op context.
    """
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=BF16)
    native = kind == "cpu" and getattr(torch.backends.mkldnn, "is_available", lambda: False)()
    native = native and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(native) and BF16)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'latentkit' has no attribute {name!r}")


__all__ = [
    "__version__",
    "autocast",
    "full_precision",
    "seed_everything",
    "resolve_device",
    "set_cpu_threads",
    *sorted(_SUBMODULES),
]
