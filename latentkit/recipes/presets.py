"""What ``python -m latentkit.recipes all --preset NAME`` trains: which recipes, with which arguments of
their ``main``, in which share of the time budget.

``cpu`` is every recipe with its own defaults, in the order ``all`` runs them (the reasons for that order
are in :mod:`latentkit.recipes.__main__`): the reference, what ``make weights`` runs.

``gpu`` retrains the five organisms on one GPU inside one time budget (``--budget``, 540 s by default), in
the order ``autoencoder``, ``vae``, ``gan`` (which plays in the bottleneck of the fitted autoencoder just
trained), ``unet``, ``dit``: larger batches than on the CPU, the recipes' own learning rates, and the two
diffusion organisms continue from the shipped weights as a new stage (``from_shipped``, see
:func:`latentkit.recipes.common.start_or_resume`), to ``steps`` in total. What the organisms share is not
retrained: the probes, the tiny CLIP and the miniature Stable Diffusion's VAE (the frozen codec every
organism draws through) stay the shipped ones.

Each recipe runs inside a :func:`latentkit.recipes.common.deadline` at the end of its share, counted from
the start of the run (the shares add up, so time one recipe leaves unspent goes to the next); a recipe out
of time saves its checkpoint at the step reached and exports what it has. The gpu shares sum to 0.85 of
the budget; the rest is for setup (copying ``data/``, loading) and the targets table measured at the end.
On a machine whose cache lacks the picture codes, the autoencoder's share also builds them.

**Estimates, not measurements.** No GPU has been lent to this project yet: the gpu step counts and shares
are estimated (from the networks' sizes and the CPU timings in the recipes' docstrings), not measured.
Every run writes ``run.json`` with the seconds per step it measured for each recipe; correct the numbers
below from it.
"""

from __future__ import annotations

from typing import NamedTuple


class Planned(NamedTuple):
    """One recipe of a preset.

    Attributes:
        recipe: the recipe's name, as ``python -m latentkit.recipes`` takes it.
        kwargs: keyword arguments of its ``main`` (``device`` comes from the command line).
        share: its fraction of the time budget; None: no share of its own (with ``--budget``, it may use
            what is left of the whole budget).
    """

    recipe: str
    kwargs: dict
    share: float | None = None


PRESETS: dict[str, tuple[Planned, ...]] = {
    "cpu": tuple(
        Planned(name, {}) for name in ("probes", "clip", "sd_vae", "unet", "autoencoder", "vae", "gan", "dit")
    ),
    # Estimated step times on one GPU (s/step, setup and export included), for the default 540 s budget:
    "gpu": (
        # 4 widths x 6,000 steps at ~4.5 ms, and each width measured by the probes: ~108 s
        Planned("autoencoder", {"steps": 6_000, "batch_size": 256}, 0.20),
        # 8,000 steps at ~4 ms: ~32 s
        Planned("vae", {"steps": 8_000, "batch_size": 256}, 0.06),
        # 20,000 steps of 4x the CPU's batch (2.7x the samples of its 30,000) at ~4.6 ms: ~92 s
        Planned("gan", {"steps": 20_000, "batch_size": 1024}, 0.17),
        # the next stage of the CPU recipe's docstring (36,000 -> 52,000, batch 4x the CPU's), cut by the
        # deadline where it ends (about 4,000 steps at ~34 ms in ~135 s): its learning rate is then still
        # that of a real descent (the 52,000-step cosine at 40,000: 1.7e-4), not the tail of a finished one
        Planned("unet", {"steps": 52_000, "batch_size": 128, "from_shipped": True}, 0.25),
        # as the U-Net's: the shipped 30,000 steps towards 46,000, about 3,000 at ~30 ms in ~92 s
        Planned("dit", {"steps": 46_000, "batch_size": 128, "from_shipped": True}, 0.17),
    ),
}

#: Each preset's time budget in seconds when ``--budget`` is not given (None: no deadline).
BUDGETS: dict[str, float | None] = {"cpu": None, "gpu": 540}
