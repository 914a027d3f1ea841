"""The one-pass injection sweep on a real-width U-Net, against the slow reference of the public code.

The tiny builds of :mod:`latentkit.tiny` test the plumbing on every architecture; this checks that
nothing changes at the real width. It builds Stable Diffusion 1.5's U-Net from its published configuration
(:mod:`latentkit.models.architectures`; 860 M parameters, random weights: no download), puts it in a
pipeline with a tiny VAE and a one-layer CLIP text encoder of SD's width (768), and runs a few layers at a
small latent:

- :func:`latentkit.injection.sweep` (O, E and one copy of O per layer in one batched run) and
  :func:`latentkit.injection.sweep_reference` (E alone with every layer cached, then one run of O per
  layer): the largest difference of their final latents, absolute and relative to the latents' scale
  (expected: about 1e-6, float32 round-off of batched against unbatched convolutions);
- the time of each (one call each, after one untimed warm-up step of the pipeline) and their ratio;
- the peak memory of each call above what the process held before it (resident set size sampled every
  5 ms with psutil: torch's CPU allocator bypasses Python's, so ``tracemalloc`` would not see it).

Usage::

    python benchmarks/bench_real_width.py                   # 4 layers, 8 x 8 latent, 2 steps, CFG 7.5
    python benchmarks/bench_real_width.py --layers all      # all 38 layers
    python benchmarks/bench_real_width.py --latent 64 --steps 50 --device cuda --dtype float16  # 512 px

With ``--device cuda`` the memory is CUDA's peak allocation instead. ``tests/test_real_width.py`` runs
:func:`measure` with the defaults (a slow test).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psutil
import torch
from diffusers import StableDiffusionPipeline
from transformers import CLIPTextConfig, CLIPTextModel

from latentkit import injection, tiny
from latentkit.layers import layer_names
from latentkit.models.architectures import build_denoiser

#: The model whose U-Net is built, from its config in :data:`latentkit.models.architectures.ARCHITECTURES`.
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"

#: Four layers spread over the U-Net: the late encoder (where the paper puts SD 1.4's important layers),
#: the bottleneck (the public code's content set), the early and the last decoder level.
DEFAULT_LAYERS = (
    "unet.down_blocks.2.attentions.1",
    "unet.mid_block.attentions.0",
    "unet.up_blocks.1.attentions.0",
    "unet.up_blocks.3.resnets.2",
)


def real_width_sd15(seed: int = 0, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Any:
    """A ``StableDiffusionPipeline`` with SD 1.5's full U-Net (random weights), a tiny VAE (images of
    2 x the latent side) and a one-layer text encoder 768 wide, in inference mode."""
    small = tiny.build("sd1", seed)
    torch.manual_seed(seed)
    unet = build_denoiser(SD15, device="cpu")
    tokenizer = small.tokenizer
    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=unet.config.cross_attention_dim,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=8,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=small.text_encoder.config.bos_token_id,
        eos_token_id=small.text_encoder.config.eos_token_id,
        pad_token_id=small.text_encoder.config.pad_token_id,
    )
    pipe = StableDiffusionPipeline(
        vae=small.vae,
        text_encoder=CLIPTextModel(text_config),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=small.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    return pipe if dtype == torch.float32 else pipe.to(dtype=dtype)


class PeakMemory:
    """Peak memory above the level at entry, in bytes: CUDA's peak allocation on a GPU, else the process's
    resident set size sampled every ``interval`` seconds in a thread."""

    def __init__(self, device: str, interval: float = 0.005):
        self.cuda = torch.device(device).type == "cuda"
        self.interval = interval
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
            return self
        self.process = psutil.Process()
        self.start = self.process.memory_info().rss
        self.top = self.start
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.top = max(self.top, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc: Any) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.start
            return
        self.running = False
        self.thread.join()
        self.top = max(self.top, self.process.memory_info().rss)
        self.peak = self.top - self.start


def timed(fn: Callable[[], Any], device: str) -> tuple[Any, float, int]:
    """``(result, seconds, peak bytes above the start)`` of one call of ``fn``."""
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        result = fn()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return result, seconds, memory.peak


def measure(
    layers: Sequence[str] | None = DEFAULT_LAYERS,
    latent: int = 8,
    steps: int = 2,
    guidance_scale: float = 7.5,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> dict[str, Any]:
    """Build the real-width pipeline and run the sweep and the reference on the same O/E pair.

    Args:
        layers: layer names, or ``None`` for all 38.
        latent: latent side (8: images of 16 px through the tiny VAE; SD's own is 64, 512 px).
        steps: DDIM steps.
        guidance_scale: classifier-free guidance (SD 1.5's default 7.5: two rows per image).

    Returns:
        ``layers`` (the names), ``build_s``, ``parameters``, seconds and peak bytes of ``sweep`` and
        ``reference``, ``max_abs`` and ``relative`` (the largest latent difference, and that over the
        largest absolute latent), ``max_abs_image`` (pixels in [0, 1]) and ``moved`` (how far the copy of
        O that moved least is from O, relative: the injections did something).
    """
    start = time.perf_counter()
    pipe = real_width_sd15(seed, dtype, device)
    build_s = time.perf_counter() - start
    names = list(layers) if layers is not None else layer_names(pipe)
    size = latent * pipe.vae_scale_factor
    original, edit = tiny.example_pair("sd1")
    kwargs = {"height": size, "width": size, "num_inference_steps": steps, "guidance_scale": guidance_scale}
    pipe("warm-up", **{**kwargs, "num_inference_steps": 1})  # first-call allocations out of the timing
    fast, sweep_s, sweep_peak = timed(
        lambda: injection.sweep(pipe, original, edit, names, return_latents=True, **kwargs), device
    )
    slow, reference_s, reference_peak = timed(
        lambda: injection.sweep_reference(pipe, original, edit, names, return_latents=True, **kwargs), device
    )
    difference = (fast.latents.float() - slow.latents.float()).abs().max().item()
    scale = slow.latents.float().abs().max().item()
    rows = fast.latents.float()  # (K + 2, 4, latent, latent): [E, O, O_1, ..., O_K]
    moved = (rows[2:] - rows[1:2]).flatten(1).abs().amax(dim=1).min().item()
    return {
        "layers": names,
        "latent": latent,
        "size": size,
        "steps": steps,
        "guidance_scale": guidance_scale,
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "build_s": build_s,
        "parameters": sum(p.numel() for p in pipe.unet.parameters()),
        "sweep_s": sweep_s,
        "reference_s": reference_s,
        "sweep_peak": sweep_peak,
        "reference_peak": reference_peak,
        "max_abs": difference,
        "relative": difference / scale,
        "max_abs_image": float(abs(fast.injected - slow.injected).max()),
        "moved": moved / scale,
    }


def report(m: dict[str, Any]) -> str:
    """The measurement as the benchmark prints it."""
    gib = 2**30
    rows = len(m["layers"]) + 2
    halves = 2 if m["guidance_scale"] > 1 else 1
    return "\n".join(
        [
            f"SD 1.5 U-Net at full width ({m['parameters'] / 1e6:.0f} M parameters, random weights, built in "
            f"{m['build_s']:.1f} s), {m['device']} {m['dtype']}, {torch.get_num_threads()} thread(s)",
            f"{len(m['layers'])} layers: {', '.join(m['layers'])}",
            f"latent {m['latent']} x {m['latent']} ({m['size']} px), {m['steps']} steps, guidance "
            f"{m['guidance_scale']}: the sweep's batch is {rows} x {halves} = {rows * halves} rows",
            f"max |latent difference|: {m['max_abs']:.2e} absolute, {m['relative']:.2e} relative "
            f"(images: {m['max_abs_image']:.2e}); the injections moved every copy of O by at least "
            f"{m['moved']:.2e} relative",
            f"one-pass sweep:  {m['sweep_s']:7.2f} s   peak memory +{m['sweep_peak'] / gib:.2f} GiB",
            f"slow reference:  {m['reference_s']:7.2f} s   peak memory +{m['reference_peak'] / gib:.2f} GiB",
            f"reference / sweep: {m['reference_s'] / m['sweep_s']:.2f}x time, "
            f"{m['reference_peak'] / max(m['sweep_peak'], 1):.2f}x peak memory",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", nargs="*", default=None, help="layer names, or 'all' (default: 4 layers)")
    parser.add_argument("--latent", type=int, default=8, help="latent side (SD's own: 64, i.e. 512 px)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.layers is None:
        layers: Sequence[str] | None = DEFAULT_LAYERS
    elif args.layers == ["all"]:
        layers = None
    else:
        layers = args.layers
    m = measure(layers, args.latent, args.steps, args.guidance, args.device, getattr(torch, args.dtype))
    print(report(m))


if __name__ == "__main__":
    main()
