"""The run-with-hooks layer: steps and calls counted, activations recorded, hooks tagged and gone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentkit import injection, layers, run, tiny


@pytest.fixture(scope="module")
def sd1():
    return tiny.build("sd1")


def test_record_returns_rows_steps_and_cfg_halves_of_what_the_layer_computed(sd1, hooks_left):
    name = "unet.mid_block.resnets.0"
    rows = [{"prompt": "a red star", "seed": 0}, {"prompt": "a blue circle", "seed": 1}]
    kwargs = tiny.call_kwargs("sd1", num_inference_steps=3, guidance_scale=3.0)
    seen, tracker = [], run.StepTracker()

    def keep(act, _name):
        seen.append((tracker.index, act.clone()))

    run.generate(sd1, rows, {name: keep}, tracker, **kwargs)
    recorded = run.record(sd1, rows, {name: [2, 0]}, **kwargs)[name]
    assert recorded.shape == (2, 2, 2, *seen[0][1].shape[1:])  # rows, steps (as asked), halves, C, H, W
    by_step = dict(seen)
    for s, step in enumerate([2, 0]):
        halves = by_step[step].reshape(2, 2, *by_step[step].shape[1:])  # [uncond rows; cond rows]
        torch.testing.assert_close(recorded[:, s], halves.transpose(0, 1))
    assert hooks_left(sd1) == []


def test_record_stops_once_the_last_step_asked_for_is_recorded(sd1, hooks_left):
    name = "unet.mid_block.resnets.0"
    rows = [{"prompt": "a red star", "seed": 0}]
    kwargs = tiny.call_kwargs("sd1", num_inference_steps=4, guidance_scale=3.0)
    full = run.record(sd1, rows, {name: [0, 1, 2, 3]}, **kwargs)[name]
    calls = []
    handle = sd1.unet.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        early = run.record(sd1, rows, {name: [1, 0], "unet.up_blocks.0": [0]}, **kwargs)
    finally:
        handle.remove()
    assert len(calls) == 2  # steps 0 and 1 ran; steps 2 and 3 (and the VAE decode) did not
    torch.testing.assert_close(early[name], full[:, [1, 0]])  # stopping early changes nothing recorded
    assert early["unet.up_blocks.0"].shape[1] == 1
    assert hooks_left(sd1) == []


def test_record_refuses_steps_the_schedule_does_not_have(sd1):
    kwargs = tiny.call_kwargs("sd1", num_inference_steps=2)
    with pytest.raises(ValueError, match=r"steps \[5\] were not run: the schedule has 2 steps"):
        run.record(sd1, [{"prompt": "a star", "seed": 0}], {"unet.mid_block": [0, 5]}, **kwargs)
    with pytest.raises(ValueError, match="distinct step indices"):
        run.record(sd1, [{"prompt": "a star", "seed": 0}], {"unet.mid_block": [1, 1]}, **kwargs)
    with pytest.raises(ValueError, match="no inputs"):
        run.record(sd1, [], {"unet.mid_block": [0]}, **kwargs)


def test_hooks_are_tagged_while_attached_and_gone_afterwards(sd1, hooks_left):
    module = layers.resolve(sd1, "unet.mid_block.resnets.0")
    tracker = run.StepTracker()
    with tracker.attached(sd1), layers.patched(sd1, {"unet.mid_block.resnets.0": lambda a, n: None}):
        assert [layers.is_latentkit_hook(h) for h in module._forward_hooks.values()] == [True]
        assert all(layers.is_latentkit_hook(h) for h in sd1.unet._forward_pre_hooks.values())
        assert hooks_left(sd1) != []
    assert hooks_left(sd1) == []
    # a hook of someone else's is not taken for latentkit's
    handle = module.register_forward_hook(lambda *a: None)
    try:
        assert not any(layers.is_latentkit_hook(h) for h in module._forward_hooks.values())
    finally:
        handle.remove()


def test_step_tracker_counts_steps_once_and_every_denoiser_call():
    flux = tiny.build("flux")
    tracker = run.StepTracker()
    kwargs = tiny.call_kwargs("flux", num_inference_steps=3)
    row = {"prompt": "a red star", "negative_prompt": "a blue circle", "seed": 0}
    run.generate(flux, [row], tracker=tracker, true_cfg_scale=2.0, **kwargs)
    assert (tracker.index, tracker.call) == (2, 5)  # 3 steps, two calls each (true CFG)


@pytest.mark.parametrize(
    "arch, extra",
    [
        ("flux", {"true_cfg_scale": 2.0}),
        (
            "sd3",
            {
                "skip_guidance_layers": [1],
                "skip_layer_guidance_start": 0.0,
                "skip_layer_guidance_stop": 1.0,
            },
        ),
    ],
    ids=["flux_true_cfg", "sd3_skip_layer_guidance"],
)
def test_reference_pairs_calls_in_order_when_a_step_calls_the_denoiser_twice(arch, extra, hooks_left):
    pipe = tiny.build(arch)
    original, edit = tiny.example_pair(arch)
    if arch == "flux":
        original["negative_prompt"] = edit["negative_prompt"] = "a green square"
    kwargs = {**tiny.call_kwargs(arch, num_inference_steps=3), **extra}
    names = layers.layer_names(pipe)[:2] + layers.layer_names(pipe)[-1:]
    fast = injection.sweep(pipe, original, edit, names, return_latents=True, **kwargs)
    slow = injection.sweep_reference(pipe, original, edit, names, return_latents=True, **kwargs)
    scale = slow.latents.abs().max().item()
    assert (fast.latents - slow.latents).abs().max().item() <= 1e-4 * scale
    assert np.abs(fast.injected - slow.injected).max() <= 1e-3
    assert hooks_left(pipe) == []
