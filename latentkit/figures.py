"""Save figures for reuse: every figure a notebook draws lands in ``figures/`` as PNG and PDF."""

from __future__ import annotations

from pathlib import Path

from latentkit.paths import figures_dir


def save_figure(fig, name: str, *, dpi: int = 150) -> list[Path]:
    """Write ``fig`` to ``figures/<name>.png`` and ``figures/<name>.pdf``.

    Args:
        fig: a matplotlib Figure.
        name: file stem, e.g. ``"00_world_grid"`` (numbered like the notebook that draws it).
        dpi: resolution of the PNG.

    Returns:
        The two paths written.
    """
    if not name or "/" in name or name.endswith((".png", ".pdf")):
        raise ValueError(f"name must be a bare file stem like '00_world_grid', got {name!r}")
    out = figures_dir()
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=dpi, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})  # same bytes each run
    return paths
