"""Shared test fixtures: one torch thread per test (CI has two cores), and the no-hook-left check."""

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _hooks_left(pipe) -> list[str]:
    """Modules of any component of ``pipe`` that still carry a hook of latentkit's.

    latentkit tags its hooks (:func:`latentkit.layers.is_latentkit_hook`), so this knows them exactly,
    beside the hooks transformers 5 installs on text encoders to capture hidden states. The denoiser must
    carry no hook at all.
    """
    from latentkit.layers import is_latentkit_hook

    left = []
    for component, module in pipe.components.items():
        if not isinstance(module, nn.Module):
            continue
        for path, sub in module.named_modules():
            hooks = [*sub._forward_hooks.values(), *sub._forward_pre_hooks.values()]
            if component in ("unet", "transformer") and hooks:
                left.append(f"{component}.{path}")
            elif any(is_latentkit_hook(h) for h in hooks):
                left.append(f"{component}.{path}")
    return left


@pytest.fixture
def hooks_left():
    """``hooks_left(pipe)``: the modules of ``pipe`` where a latentkit hook is still attached."""
    return _hooks_left


def target_params(targets: dict, shortfalls: dict) -> list:
    """``(source, factor)`` parameters for a quality-target test; the pairs in ``shortfalls`` (pair ->
    what is reached) are strict expected failures, so a target that starts being met must be moved out."""
    return [
        pytest.param(
            source,
            factor,
            marks=[pytest.mark.xfail(strict=True, reason=shortfalls[source, factor])]
            if (source, factor) in shortfalls
            else [],
        )
        for source, factors in targets.items()
        for factor in factors
    ]
