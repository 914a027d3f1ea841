"""The one-pass sweep equals the slow reference on a real-width U-Net (issue 15, item 5).

The tiny builds test every architecture's plumbing; this runs Stable Diffusion 1.5's U-Net at its full
width (860 M parameters, random weights, built from its configuration: no download) on four layers spread
over the encoder, the bottleneck and the decoder, at an 8 x 8 latent for 2 steps with classifier-free
guidance. ``benchmarks/bench_real_width.py`` makes the measurement and also prints times and memory.
About 40 s on one core, and 4 GB of memory.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_real_width.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_real_width", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_sweep_equals_the_reference_at_real_width():
    bench = _bench()
    m = bench.measure()
    assert m["parameters"] > 800e6, "not SD 1.5's full-width U-Net"
    assert m["layers"] == list(bench.DEFAULT_LAYERS)
    assert {name.split(".")[1] for name in m["layers"]} == {"down_blocks", "mid_block", "up_blocks"}
    # float32 round-off of a batch of 12 rows against runs of 2: about 2e-6 of the latents' scale
    assert m["relative"] <= 1e-5, bench.report(m)
    assert m["max_abs_image"] <= 1e-4, bench.report(m)
    assert m["moved"] > 1e3 * m["relative"], "the injections must change O, or the comparison means nothing"
