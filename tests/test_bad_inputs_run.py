"""Bad input to a generation or a sweep: a clear one-line error (or warning), never a quiet wrong result.

One case per item of the list in the reliability issue that concerns running a model; the batch and
file cases are in ``test_bad_inputs_batch.py``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from latentkit import injection, run, tiny

ORIGINAL, EDIT = tiny.example_pair("sd1")


@pytest.fixture(scope="module")
def sd1():
    return tiny.build("sd1")


def sweep(pipe, layers=("unet.mid_block.resnets.0",), original=ORIGINAL, edit=EDIT, **overrides):
    kwargs = {**tiny.call_kwargs("sd1", num_inference_steps=2), **overrides}
    return injection.sweep(pipe, original, edit, list(layers) if layers else None, **kwargs)


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        ({"num_inference_steps": -3}, ValueError, r"num_inference_steps must be a positive integer, got -3"),
        ({"num_inference_steps": 0}, ValueError, r"num_inference_steps must be a positive integer, got 0"),
        (
            {"num_inference_steps": 2.5},
            ValueError,
            r"num_inference_steps must be a positive integer, got 2.5",
        ),
        ({"guidance_scale": 1e30}, ValueError, r"guidance_scale=1e\+30 is far outside any useful range"),
        ({"guidance_scale": float("nan")}, ValueError, r"guidance_scale must be a finite number"),
        ({"num_inference_step": 3}, TypeError, r"no argument 'num_inference_step'; did you mean \['num_inf"),
        (
            {"guidence_scale": 3.0},
            TypeError,
            r"no argument 'guidence_scale'; did you mean \['guidance_scale'",
        ),
        ({"steps": 5}, ValueError, r"steps must be a \(start, stop\) pair of numbers, got 5"),
        ({"steps": (0.5, 1)}, ValueError, r"steps must be a pair of step indices \(integers\)"),
        ({"alpha": "0.5"}, ValueError, r"alpha must be a number in \[0, 1\], got '0.5'"),
        ({"chunk_size": 1.5}, ValueError, r"chunk_size must be a positive integer, 'auto' or None, got 1.5"),
        ({"chunk_size": 0}, ValueError, r"chunk_size must be a positive integer"),
    ],
    ids=lambda v: str(v)[:40] if not isinstance(v, type) else v.__name__,
)
def test_bad_arguments_are_one_line_errors_naming_the_argument(sd1, overrides, error, message, hooks_left):
    with pytest.raises(error, match=message) as info:
        sweep(sd1, **overrides)
    assert "\n" not in str(info.value)
    assert hooks_left(sd1) == []


def test_a_container_or_a_string_is_not_taken_for_layers(sd1):
    with pytest.raises(ValueError, match=r"container of layers, never called itself.*attentions.0"):
        sweep(sd1, ["unet.down_blocks.0.attentions"])
    with pytest.raises(TypeError, match=r"got the string 'unet.mid_block.attentions.0'; write \["):
        injection.sweep(sd1, ORIGINAL, EDIT, "unet.mid_block.attentions.0", num_inference_steps=2)


def test_a_prompt_of_unknown_words_is_refused_and_some_unknown_words_are_named(sd1):
    german = {**ORIGINAL, "prompt": "ein kleiner roter Stern auf weissem Grund"}
    with pytest.raises(ValueError, match=r"knows none of its words \['ein', 'kleiner'"):
        sweep(sd1, original=german)
    some = {**ORIGINAL, "prompt": "a small red star at the center on a plain white background, glowing"}
    with pytest.warns(UserWarning, match=r"the words \[',', 'glowing'\] are unknown"):
        sweep(sd1, original=some)


def test_non_finite_images_fail_and_name_the_weights_and_the_way_back(sd1, hooks_left):
    broken = copy.deepcopy(sd1)
    with torch.no_grad():
        broken.unet.conv_in.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(run.NonFiniteError, match=r"NaN or infinite.*git checkout data/.*make weights"):
        sweep(broken)
    assert hooks_left(broken) == []


def test_auto_chunk_size_follows_free_memory_and_changes_no_result(sd1, monkeypatch):
    names = ["unet.down_blocks.0.resnets.0", "unet.mid_block.resnets.0", "unet.up_blocks.1.resnets.0"]
    entries = [(n,) for n in names]
    kwargs = tiny.call_kwargs("sd1", num_inference_steps=2)
    monkeypatch.setattr(injection, "free_memory", lambda device: 1)
    assert injection.auto_chunk_size(sd1, entries, **kwargs) == 1
    monkeypatch.setattr(injection, "free_memory", lambda device: 10**12)
    assert injection.auto_chunk_size(sd1, entries, **kwargs) == 3
    # in between: the budget is half the free memory, 2 rows for E and O, 2 halves with guidance
    per_row = (
        injection.auto_chunk_size.__globals__["_ACTIVATION_OVERHEAD"]
        * 4
        * 2
        * sum(
            int(np.prod(layer.shape))
            for layer in __import__("latentkit").layers.list_layers(sd1, sample_size=16)
        )
    )
    monkeypatch.setattr(injection, "free_memory", lambda device: int(2 * per_row * 4))
    assert injection.auto_chunk_size(sd1, entries, **kwargs) == 2
    whole = injection.sweep(sd1, ORIGINAL, EDIT, names, **kwargs)
    chunked = injection.sweep(sd1, ORIGINAL, EDIT, names, chunk_size="auto", **kwargs)
    assert np.abs(whole.injected - chunked.injected).max() <= 1e-4
