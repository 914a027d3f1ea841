"""The one-pass injection sweep against the slow reference, its options, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentkit import injection, layers, tiny

_PIPES: dict[str, object] = {}


def pipe_of(arch: str):
    """One tiny pipeline per architecture for the whole module (they are read-only here)."""
    if arch not in _PIPES:
        _PIPES[arch] = tiny.build(arch)
    return _PIPES[arch]


def assert_same_run(fast: injection.SweepResult, slow: injection.SweepResult, atol: float = 1e-4):
    """Latents equal up to batch-size rounding (relative to their scale); images too."""
    assert fast.names == slow.names
    scale = slow.latents.abs().max().item()
    assert (fast.latents - slow.latents).abs().max().item() <= atol * scale
    for a, b in [(fast.original, slow.original), (fast.edit, slow.edit), (fast.injected, slow.injected)]:
        assert np.abs(a - b).max() <= 1e-3


@pytest.mark.parametrize("arch", ["sd1", "sdxl", "sd3", "flux", "sd2", "kandinsky22", "pixart"])
@pytest.mark.parametrize("guidance_scale", [1.0, 3.0], ids=["cfg_off", "cfg_on"])
def test_one_pass_sweep_matches_the_slow_reference(arch, guidance_scale, hooks_left):
    pipe = pipe_of(arch)
    original, edit = tiny.example_pair(arch)
    kwargs = tiny.call_kwargs(arch, num_inference_steps=3, guidance_scale=guidance_scale)
    fast = injection.sweep(pipe, original, edit, return_latents=True, **kwargs)
    slow = injection.sweep_reference(pipe, original, edit, return_latents=True, **kwargs)
    assert fast.names == layers.layer_names(pipe)
    assert_same_run(fast, slow)
    # every layer carries something: injecting it moves O's final latents
    moved = (fast.latents[2:] - fast.latents[1:2]).flatten(1).abs().amax(dim=1)
    assert (moved > 1e-3 * fast.latents.abs().max()).all()
    assert hooks_left(pipe) == []


@pytest.mark.parametrize("arch", ["sd1", "sd3"])
def test_windows_blends_combinations_and_chunks_match_the_reference(arch):
    pipe = pipe_of(arch)
    names = layers.layer_names(pipe)
    original, edit = tiny.example_pair(arch)
    kwargs = tiny.call_kwargs(arch, num_inference_steps=3)
    picked = [names[0], (names[0], names[-1]), names[-1]]
    runs = {}
    for label, options in {
        "steps": {"steps": (1, 2)},
        "alpha": {"alpha": 0.5},
        "both": {"steps": (0, 2), "alpha": 0.3},
    }.items():
        fast = injection.sweep(pipe, original, edit, picked, return_latents=True, **options, **kwargs)
        slow = injection.sweep_reference(
            pipe, original, edit, picked, return_latents=True, **options, **kwargs
        )
        assert_same_run(fast, slow)
        runs[label] = fast
    assert runs["steps"].names == [names[0], f"{names[0]}+{names[-1]}", names[-1]]
    # a combination is not either of its parts
    lat = runs["alpha"].latents
    assert (lat[3] - lat[2]).abs().max() > 1e-4 and (lat[3] - lat[4]).abs().max() > 1e-4
    chunked = injection.sweep(
        pipe, original, edit, picked, chunk_size=2, alpha=0.5, return_latents=True, **kwargs
    )
    np.testing.assert_allclose(chunked.injected, runs["alpha"].injected, atol=1e-4)
    torch.testing.assert_close(chunked.latents, runs["alpha"].latents, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        injection.sweep(pipe, original, edit, picked, chunk_size=0, **kwargs)


def test_timestep_window_in_scheduler_units():
    pipe = pipe_of("sd1")
    original, edit = tiny.example_pair("sd1")
    kwargs = tiny.call_kwargs("sd1", num_inference_steps=3)
    name = "unet.mid_block.attentions.0"
    injection.sweep(pipe, original, edit, [name], **kwargs)  # sets the scheduler's timesteps
    middle = float(pipe.scheduler.timesteps[1])  # DDIM, 3 steps: [667, 334, 1]
    by_time = injection.sweep(pipe, original, edit, [name], timesteps=(middle - 1, middle + 1), **kwargs)
    by_step = injection.sweep(pipe, original, edit, [name], steps=(1, 2), **kwargs)
    np.testing.assert_array_equal(by_time.injected, by_step.injected)
    assert np.abs(by_time.injected - by_time.original).max() > 1e-3


@pytest.mark.parametrize("arch", ["sd1", "kandinsky22", "flux", "pixart"])
def test_what_must_change_nothing_changes_nothing(arch, hooks_left):
    pipe = pipe_of(arch)
    original, edit = tiny.example_pair(arch)
    kwargs = tiny.call_kwargs(arch, num_inference_steps=2)
    for options in ({"steps": (1, 1)}, {"alpha": 0.0}):
        result = injection.sweep(pipe, original, edit, return_latents=True, **options, **kwargs)
        copies, o = result.latents[2:], result.latents[1:2]
        assert (copies - o).abs().max().item() <= 1e-6 * o.abs().max().item()
    # E injected into a copy of E (O := E's prompt and noise) gives E back at every layer
    result = injection.sweep(pipe, edit, edit, return_latents=True, **kwargs)
    e = result.latents[0:1]
    assert (result.latents[1:] - e).abs().max().item() <= 1e-6 * e.abs().max().item()
    assert hooks_left(pipe) == []


def test_inject_rows_handles_both_cfg_halves():
    """Rows [E, O, O_1, O_2] twice (uncond, cond): uncond E -> uncond copies, cond E -> cond copies."""
    act = torch.arange(8.0)[:, None, None] * torch.ones(8, 2, 3)  # (B=8, 2, 3), row i filled with i
    fn = injection._inject_from_row(0, [3], n_rows=4, alpha=1.0, active=lambda: True)
    out = fn(act, "layer")
    assert out[:, 0, 0].tolist() == [0, 1, 2, 0, 4, 5, 6, 4]
    half = injection._inject_from_row(0, [2, 3], n_rows=4, alpha=0.5, active=lambda: True)(act, "l")
    assert half[:, 0, 0].tolist() == [0, 1, 1, 1.5, 4, 5, 5, 5.5]
    assert injection._inject_from_row(0, [3], 4, 1.0, active=lambda: False)(act, "l") is None
    with pytest.raises(RuntimeError, match="not a multiple of the 3 sweep rows"):
        injection._inject_from_row(0, [2], 3, 1.0, active=lambda: True)(act, "l")


def test_bad_input_is_refused_clearly():
    pipe = pipe_of("sd1")
    original, edit = tiny.example_pair("sd1")
    kwargs = tiny.call_kwargs("sd1", num_inference_steps=2)
    with pytest.raises(ValueError, match=r"closest valid names: \['unet.up_blocks.1.attentions.0'"):
        injection.sweep(pipe, original, edit, ["unet.up_blocks.1.attention.0"], **kwargs)
    small, large = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 8, 8)
    with pytest.raises(ValueError, match="O and E differ in the shape of 'latents'"):
        injection.sweep(pipe, {"prompt": "a", "latents": small}, {"prompt": "b", "latents": large}, **kwargs)
    with pytest.raises(ValueError, match="exactly one of 'seed'"):
        injection.sweep(pipe, {"prompt": "a"}, {"prompt": "b"}, **kwargs)
    with pytest.raises(ValueError, match="same arguments"):
        injection.sweep(pipe, original, {"prompt": "b", "seed": 1, "negative_prompt": "x"}, **kwargs)
    with pytest.raises(ValueError, match="outside the schedule"):
        injection.sweep(pipe, original, edit, steps=(1, 3), **kwargs)
    with pytest.raises(ValueError, match=r"0 <= low <= high <= 1000"):
        injection.sweep(pipe, original, edit, timesteps=(500, 2000), **kwargs)
    with pytest.raises(ValueError, match="cannot be shared"):
        injection.sweep(pipe, original, edit, num_images_per_prompt=2, **kwargs)
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\], got 1.5"):
        injection.sweep(pipe, original, edit, alpha=1.5, **kwargs)
    with pytest.raises(TypeError, match="Supported"):
        injection.sweep(object(), original, edit, **kwargs)


def test_no_hook_is_left_when_the_run_raises(hooks_left):
    pipe = pipe_of("sd1")
    original, edit = tiny.example_pair("sd1")
    kwargs = tiny.call_kwargs("sd1", num_inference_steps=2)  # DDIM, 2 steps: [501, 1]
    with pytest.raises(ValueError, match="contains no step of the schedule"):
        injection.sweep(pipe, original, edit, timesteps=(600, 700), **kwargs)  # raised mid-run
    assert hooks_left(pipe) == []
    with pytest.raises(ValueError, match="contains no step of the schedule"):
        injection.sweep_reference(
            pipe, original, edit, ["unet.mid_block.resnets.0"], timesteps=(600, 700), **kwargs
        )
    assert hooks_left(pipe) == []


def test_trivial_and_equivalent_injections_are_found_from_the_computation():
    pipe = pipe_of("sd1")
    found = injection.equivalences(pipe)
    names = layers.layer_names(pipe)
    assert found.trivial == [names[-1]]  # only the output end: nothing but the output comes after it
    assert found.groups == [("unet.mid_block.attentions.0", "unet.mid_block.resnets.1")]
    assert found.representative("unet.mid_block.resnets.1") == "unet.mid_block.attentions.0"
    # the same layers give the same images in a sweep, and other layers do not
    original, edit = tiny.example_pair("sd1", seeds=(0, 0))
    kwargs = tiny.call_kwargs("sd1", num_inference_steps=3)
    mid = ["unet.mid_block.attentions.0", "unet.mid_block.resnets.1", "unet.mid_block.resnets.0"]
    result = injection.sweep(pipe, original, edit, mid, **kwargs)
    assert np.abs(result.injected[0] - result.injected[1]).max() <= 1e-5
    assert np.abs(result.injected[0] - result.injected[2]).max() > 1e-3


@pytest.mark.parametrize("noise, gives_e", [("shared", True), ("separate", False)])
def test_the_papers_protocol_shares_the_noise_so_the_trivial_layer_gives_e(noise, gives_e, hooks_left):
    from latentkit.aspects import run_sweeps

    pipe = pipe_of("sd1")
    last = layers.layer_names(pipe)[-1]
    prompts = [p["prompt"] for p in tiny.example_pair("sd1")]
    kwargs = tiny.call_kwargs("sd1", num_inference_steps=3)
    (run,) = run_sweeps(pipe, [tuple(prompts)], seeds=[4], layers=[last], noise=noise, **kwargs)
    assert run.original["seed"] == 4 and (run.edit["seed"] == 4) == (noise == "shared")
    gap = np.abs(run.result.injected[0] - run.result.edit).max()
    assert (gap <= 1e-5) == gives_e
    assert hooks_left(pipe) == []
    with pytest.raises(ValueError, match=r"noise must be one of \('shared', 'separate'\)"):
        run_sweeps(pipe, [tuple(prompts)], seeds=[4], layers=[last], noise="same", **kwargs)
