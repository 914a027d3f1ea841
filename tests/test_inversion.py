"""DDIM inversion held against diffusers' own ``DDIMInverseScheduler``."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMInverseScheduler

from latentkit import inversion, tiny


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_invert_matches_diffusers_inverse_scheduler(prediction_type):
    pipe = tiny.build("sd1")
    pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, prediction_type=prediction_type)
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    caption, steps = "a small red star at the center on a plain white background", 10
    ours = inversion.invert(pipe, latents, caption, steps)

    reference = DDIMInverseScheduler.from_config(pipe.scheduler.config)
    reference.set_timesteps(steps)
    embeds, _ = pipe.encode_prompt([caption], pipe.device, 1, False)
    x = latents.clone()
    with torch.no_grad():
        for t in reference.timesteps:
            out = pipe.unet(x, t, encoder_hidden_states=embeds).sample
            x = reference.step(out, t, x).prev_sample
    assert list(reversed(inversion.schedule_timesteps(pipe, steps))) == [int(t) for t in reference.timesteps]
    torch.testing.assert_close(ours, x, atol=1e-4 * float(x.abs().max()), rtol=1e-4)


def test_a_flow_model_is_refused_with_what_to_do_instead():
    with pytest.raises(TypeError, match=r"samples along a flow \(SD3, Flux\)"):
        inversion.invert(tiny.build("sd3"), torch.zeros(1, 4, 16, 16), "a star", 4)
