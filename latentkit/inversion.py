"""DDIM inversion: the initial noise from which a diffusion model would draw a given image.

Fig. 4's first candidate is the initial noise; to put a *given* image into that space (to measure how
organized it is, or where a caption's image lies in it), the sampler is run backwards. Used by
:class:`latentkit.candidates.NoiseSpace` and notebook ``03_diffusion_latent_spaces``; the tests hold it
against diffusers' ``DDIMInverseScheduler``.
"""

from __future__ import annotations

import torch

from latentkit.layers import find_denoiser


def schedule_timesteps(pipe, n_steps: int) -> list[int]:
    """The scheduler's timesteps (0..1000) for ``n_steps`` steps, from a copy of the scheduler."""
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(n_steps)
    return [int(t) for t in scheduler.timesteps]


@torch.no_grad()
def invert(pipe, latents: torch.Tensor, caption: str, num_inference_steps: int) -> torch.Tensor:
    """The initial noise from which the sampler would draw ``latents``: DDIM run backwards.

    Deterministic DDIM is nearly invertible (Song et al., 2021): each step, read backwards, turns a
    latent into a noisier one with the model's own prediction. The model is conditioned on ``caption``
    alone (no classifier-free guidance, as in Mokady et al.'s null-text inversion), so sampling from the
    result with guidance reproduces the image only approximately.

    Args:
        pipe: the pipeline (its denoiser, text encoder and scheduler's noise levels).
        latents: (1, C, h, w) scaled VAE latents of the image.
        caption: the image's caption.
        num_inference_steps: the schedule to invert.

    Returns:
        (1, C, h, w) noise on the CPU.
    """
    _, denoiser = find_denoiser(pipe)
    if not hasattr(pipe.scheduler, "alphas_cumprod"):
        raise TypeError(
            f"DDIM inversion needs a noise-prediction scheduler with alphas_cumprod (SD 1.x/2.x, the U-Net "
            f"organism); {type(pipe.scheduler).__name__} samples along a flow (SD3, Flux): invert such a "
            "model by integrating its velocity backwards instead"
        )
    kind = pipe.scheduler.config.get("prediction_type", "epsilon")
    if kind not in ("epsilon", "v_prediction"):
        raise ValueError(f"invert handles epsilon and v_prediction models, not {kind!r}")
    embeds, _ = pipe.encode_prompt(
        prompt=[caption], device=pipe.device, num_images_per_prompt=1, do_classifier_free_guidance=False
    )
    alphas = pipe.scheduler.alphas_cumprod.double()
    x = latents.double()
    # The noise level of x at the start: where the forward sampler's last step ends (diffusers' DDIM puts
    # it at alphas_cumprod[0] unless ``set_alpha_to_one``), so that inversion undoes that step exactly.
    clean = pipe.scheduler.config.get("set_alpha_to_one", True)
    a_x = torch.tensor(1.0, dtype=torch.float64) if clean else alphas[0]
    for t in reversed(schedule_timesteps(pipe, num_inference_steps)):  # from the least noisy step up
        out = denoiser(x.to(pipe.device, denoiser.dtype), t, encoder_hidden_states=embeds).sample
        out = out.double().cpu()
        if kind == "v_prediction":
            x0, eps = a_x.sqrt() * x - (1 - a_x).sqrt() * out, a_x.sqrt() * out + (1 - a_x).sqrt() * x
        else:
            x0, eps = (x - (1 - a_x).sqrt() * out) / a_x.sqrt(), out
        a_x = alphas[t]
        x = a_x.sqrt() * x0 + (1 - a_x).sqrt() * eps
    return x.float()


__all__ = ["invert", "schedule_timesteps"]
