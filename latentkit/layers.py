"""Name the layers of any diffusers denoiser by their module path, and patch them only inside a ``with``.

Section 3.1 of the paper inserts the representation of one image into the generation of another, one
layer at a time. A *layer* is addressed the way ``named_modules()`` spells it, prefixed by the pipeline
attribute that holds the denoiser (as TransformerLens names its hook points):

- U-Nets (SD 1.x / 2.x / XL, Kandinsky 2.2): the resnets and attentions inside the down, mid and up
  blocks, e.g. ``unet.down_blocks.1.attentions.0``, ``unet.mid_block.resnets.1``,
  ``unet.up_blocks.2.resnets.0`` (and, on request, the ``downsamplers.0`` / ``upsamplers.0``);
- transformers (SD3, Flux, PixArt): the top-level blocks, e.g. ``transformer.transformer_blocks.3``,
  ``transformer.single_transformer_blocks.7``.

Multi-stream transformer blocks return the text stream as well as the image stream, and the order is
not the same from class to class. :data:`IMAGE_STREAM` says, per block class, where the image stream
is; every hook reads and writes that stream only.

Interventions exist only inside :func:`patched`, which removes its hooks in ``finally``::

    with patched(pipe, {"unet.mid_block.attentions.0": lambda act, name: act * 0}):
        images = pipe(prompt, num_inference_steps=10).images
    # here no hook is left, even if the call raised

Used by :mod:`latentkit.injection` and the notebook on layerwise representations.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import (
    FluxTransformer2DModel,
    PixArtTransformer2DModel,
    SD3Transformer2DModel,
    UNet2DConditionModel,
)
from diffusers.utils import BaseOutput
from torch import nn

#: A patch: receives the image-stream activation of a layer and the layer's name, returns the
#: replacement (same shape) or ``None`` to leave it unchanged.
PatchFn = Callable[[torch.Tensor, str], torch.Tensor | None]

# --------------------------------------------------------------------------------------------------
# Where is the image stream? One row per block class, checked against diffusers 0.42.1's source.
# --------------------------------------------------------------------------------------------------

#: ``block class name -> layout`` of its forward's return value. Layouts:
#:
#: ``"tensor"``      the output *is* the image stream: ``(B, C, H, W)`` in U-Nets, ``(B, N, D)`` in DiTs.
#: ``"first"``       a tuple or ``BaseOutput`` whose first item is the image stream (``(sample,)``).
#: ``"text_image"``  the pair ``(encoder_hidden_states, hidden_states)``: text first, image **second**.
#: ``"text_image_or_concat"``  as ``"text_image"``; older diffusers returned one tensor holding the
#:                   text tokens then the image tokens along dim 1, split at the length of the
#:                   ``encoder_hidden_states`` argument.
#:
#: Any class not listed must return a plain tensor (checked at run time).
IMAGE_STREAM: dict[str, str] = {
    # U-Net layers. `ResnetBlock2D(input_tensor, temb) -> (B, C, H, W)`.
    "ResnetBlock2D": "tensor",
    # SD's cross-attention: the U-Net blocks call it with return_dict=False -> `(sample,)`.
    "Transformer2DModel": "first",
    # Kandinsky 2.2's SimpleCrossAttn blocks use a bare `Attention` on (B, C, H, W) -> (B, C, H, W).
    "Attention": "tensor",
    "Downsample2D": "tensor",
    "Upsample2D": "tensor",
    # SD3 MMDiT: `JointTransformerBlock.forward -> (encoder_hidden_states, hidden_states)`;
    # the last block has context_pre_only=True and returns `(None, hidden_states)`.
    "JointTransformerBlock": "text_image",
    # Flux double-stream block: `FluxTransformerBlock.forward -> (encoder_hidden_states, hidden_states)`.
    "FluxTransformerBlock": "text_image",
    # Flux single-stream block: concatenates [text; image] inside, splits before returning
    # `(encoder_hidden_states, hidden_states)` (diffusers >= 0.35); older versions returned the concat.
    "FluxSingleTransformerBlock": "text_image_or_concat",
    # PixArt: `BasicTransformerBlock.forward -> hidden_states (B, N, D)`; text enters by cross-attention.
    "BasicTransformerBlock": "tensor",
}


def _layout(module: nn.Module) -> str:
    return IMAGE_STREAM.get(type(module).__name__, "tensor")


def _not_a_tensor(module_name: str, cls: str, output: Any) -> TypeError:
    return TypeError(
        f"layer {module_name!r} ({cls}) returned {type(output).__name__}, not a tensor, and "
        f"latentkit.layers.IMAGE_STREAM has no row for {cls}: add one saying where its image stream is"
    )


def image_stream(name: str, module: nn.Module, output: Any, kwargs: Mapping[str, Any]) -> torch.Tensor:
    """The image-stream tensor inside a layer's ``output``, following :data:`IMAGE_STREAM`.

    Args:
        name: the layer's name, for error messages.
        module: the layer.
        output: what its forward returned.
        kwargs: the keyword arguments of that forward call (the concat layout needs
            ``encoder_hidden_states`` to know how many text tokens come first).

    Returns:
        ``(B, C, H, W)`` for U-Net layers, ``(B, N_image, D)`` for transformer blocks.
    """
    layout, cls = _layout(module), type(module).__name__
    if layout == "first":
        return output[0] if isinstance(output, tuple | BaseOutput) else output
    if layout in ("text_image", "text_image_or_concat") and isinstance(output, tuple):
        return output[1]
    if layout == "text_image_or_concat" and isinstance(output, torch.Tensor):
        return output[:, _text_length(name, kwargs) :]
    if layout == "text_image":
        raise TypeError(f"{cls} at {name!r} should return (text, image) but returned {type(output)}")
    if not isinstance(output, torch.Tensor):
        raise _not_a_tensor(name, cls, output)
    return output


def replace_image_stream(
    name: str, module: nn.Module, output: Any, image: torch.Tensor, kwargs: Mapping[str, Any]
) -> Any:
    """``output`` with its image stream replaced by ``image``; the text stream is passed through as is."""
    layout = _layout(module)
    if layout == "first":
        if isinstance(output, BaseOutput):
            return type(output)(**{**output, next(iter(output)): image})
        return (image, *output[1:]) if isinstance(output, tuple) else image
    if layout in ("text_image", "text_image_or_concat") and isinstance(output, tuple):
        return (output[0], image, *output[2:])
    if layout == "text_image_or_concat":
        return torch.cat([output[:, : _text_length(name, kwargs)], image], dim=1)
    return image


def _text_length(name: str, kwargs: Mapping[str, Any]) -> int:
    text = kwargs.get("encoder_hidden_states")
    if text is None:
        raise TypeError(
            f"{name!r} returned the concatenated text+image stream but was not called with "
            "encoder_hidden_states=..., so the text length is unknown; use diffusers >= 0.35"
        )
    return text.shape[1]


# --------------------------------------------------------------------------------------------------
# Which denoiser, which layers
# --------------------------------------------------------------------------------------------------

#: Supported denoiser classes -> the pipeline attribute that holds them (the name prefix).
DENOISERS: dict[type[nn.Module], str] = {
    UNet2DConditionModel: "unet",
    SD3Transformer2DModel: "transformer",
    FluxTransformer2DModel: "transformer",
    PixArtTransformer2DModel: "transformer",
}
_SUPPORTED = (
    "UNet2DConditionModel (Stable Diffusion 1.x, 2.x, XL and its refiner, Kandinsky 2.1 and 2.2, "
    "class-conditioned U-Nets such as the x4 upscaler), "
    "SD3Transformer2DModel (Stable Diffusion 3), FluxTransformer2DModel (Flux), "
    "PixArtTransformer2DModel (PixArt-alpha and -Sigma)"
)


def find_denoiser(pipe_or_denoiser: Any) -> tuple[str, nn.Module]:
    """The denoiser of a pipeline (or the denoiser itself) and its name prefix (``"unet"``, ...).

    Raises:
        TypeError: when there is no denoiser, or it is of a class latentkit does not know.
    """
    if isinstance(pipe_or_denoiser, nn.Module):
        candidates = [pipe_or_denoiser]
    else:
        candidates = [getattr(pipe_or_denoiser, a, None) for a in ("unet", "transformer")]
        candidates = [c for c in candidates if c is not None]
    for module in candidates:
        for cls, prefix in DENOISERS.items():
            if isinstance(module, cls):
                return prefix, module
    found = ", ".join(type(c).__name__ for c in candidates) or "no unet or transformer attribute"
    raise TypeError(
        f"{type(pipe_or_denoiser).__name__} has a denoiser latentkit does not recognise ({found}). "
        f"Supported: {_SUPPORTED}."
    )


@dataclass(frozen=True)
class Layer:
    """One injectable layer.

    Attributes:
        name: module path with the pipeline prefix, e.g. ``"unet.down_blocks.1.attentions.0"``.
        group: ``"down"``, ``"mid"``, ``"up"`` (U-Nets); ``"joint"`` (SD3), ``"double"`` or
            ``"single"`` (Flux), ``"block"`` (PixArt).
        depth: position in the order the forward pass runs the layers (0 = first).
        kind: the module's class name, e.g. ``"ResnetBlock2D"``.
        shape: image-stream output shape of one sample at the dry-run size: ``(C, H, W)`` for U-Net
            layers, ``(N_image_tokens, D)`` for transformer blocks; ``None`` when not measured.
    """

    name: str
    group: str
    depth: int
    kind: str
    shape: tuple[int, ...] | None = None


def _unet_layers(unet: nn.Module, samplers: bool) -> list[tuple[str, str]]:
    """``(path, group)`` in execution order: in every block, resnet j then attention j; samplers last."""
    blocks = [("down", f"down_blocks.{i}", b) for i, b in enumerate(unet.down_blocks)]
    if unet.mid_block is not None:
        blocks.append(("mid", "mid_block", unet.mid_block))
    blocks += [("up", f"up_blocks.{i}", b) for i, b in enumerate(unet.up_blocks)]
    out = []
    for group, path, block in blocks:
        attentions = getattr(block, "attentions", None) or []
        for j in range(len(block.resnets)):
            out.append((f"{path}.resnets.{j}", group))
            if j < len(attentions):
                out.append((f"{path}.attentions.{j}", group))
        for sampler in ("downsamplers", "upsamplers"):
            if samplers and getattr(block, sampler, None) is not None:
                out += [(f"{path}.{sampler}.{k}", group) for k in range(len(getattr(block, sampler)))]
    return out


def _transformer_layers(transformer: nn.Module) -> list[tuple[str, str]]:
    if isinstance(transformer, FluxTransformer2DModel):
        groups = {"transformer_blocks": "double", "single_transformer_blocks": "single"}
    elif isinstance(transformer, SD3Transformer2DModel):
        groups = {"transformer_blocks": "joint"}
    else:
        groups = {"transformer_blocks": "block"}
    return [
        (f"{attr}.{i}", group)
        for attr, group in groups.items()
        for i in range(len(getattr(transformer, attr)))
    ]


def list_layers(
    pipe_or_denoiser: Any,
    groups: Iterable[str] | None = None,
    *,
    samplers: bool = False,
    shapes: bool = True,
    sample_size: int | None = None,
) -> list[Layer]:
    """The injectable layers of a pipeline's denoiser, in depth order.

    Args:
        pipe_or_denoiser: a diffusers pipeline, or its ``unet`` / ``transformer``.
        groups: keep only these groups (see :class:`Layer`); ``None`` keeps all.
        samplers: also list the U-Net's ``downsamplers.0`` / ``upsamplers.0``.
        shapes: measure each layer's output shape with one dry forward pass of batch 1 (its hooks are
            removed afterwards); ``False`` skips the pass and leaves ``shape=None``.
        sample_size: latent side of the dry pass; default the denoiser's ``config.sample_size``
            (Flux has none: 64, i.e. 512 px images).

    Returns:
        One :class:`Layer` per layer, ``depth`` increasing.

    Raises:
        TypeError: for a denoiser latentkit does not recognise.
        ValueError: for a group this denoiser does not have.
    """
    prefix, denoiser = find_denoiser(pipe_or_denoiser)
    if isinstance(denoiser, UNet2DConditionModel):
        found = _unet_layers(denoiser, samplers)
    else:
        found = _transformer_layers(denoiser)
    kinds = {path: type(denoiser.get_submodule(path)).__name__ for path, _ in found}
    layers = [
        Layer(f"{prefix}.{path}", group, depth, kinds[path]) for depth, (path, group) in enumerate(found)
    ]
    if groups is not None:
        groups = list(groups)
        valid = sorted({layer.group for layer in layers})
        if unknown := [g for g in groups if g not in valid]:
            raise ValueError(f"unknown group(s) {unknown} for {type(denoiser).__name__}: use {valid}")
        layers = [layer for layer in layers if layer.group in groups]
    if not shapes:
        return layers
    measured = _dry_shapes(pipe_or_denoiser, [layer.name for layer in layers], sample_size)
    return [Layer(layer.name, layer.group, layer.depth, layer.kind, measured[layer.name]) for layer in layers]


def layer_names(pipe_or_denoiser: Any, groups: Iterable[str] | None = None) -> list[str]:
    """Just the names of :func:`list_layers` (no dry pass)."""
    return [layer.name for layer in list_layers(pipe_or_denoiser, groups, shapes=False)]


def dry_inputs(denoiser: nn.Module, side: int | None, seed: int = 0) -> dict[str, Any]:
    """Random batch-1 inputs of the right shapes for one forward pass of ``denoiser``, drawn with ``seed``."""
    c = denoiser.config
    p = next(denoiser.parameters())
    g = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device=p.device, dtype=p.dtype)

    default = c.get("sample_size") or 64
    side = side or (default if isinstance(default, int) else default[0])
    timestep = torch.tensor([10.0], device=p.device)
    if isinstance(denoiser, UNet2DConditionModel):
        added: dict[str, torch.Tensor] = {}
        if c.addition_embed_type == "text_time":
            pooled = c.projection_class_embeddings_input_dim - 6 * c.addition_time_embed_dim
            added = {"text_embeds": randn(1, pooled), "time_ids": randn(6)[None].abs() * 64}
        elif c.addition_embed_type == "image":
            added = {"image_embeds": randn(1, c.encoder_hid_dim)}
        elif c.addition_embed_type == "text_image":  # Kandinsky 2.1: pooled CLIP text and image embeddings
            pooled = c.cross_attention_dim
            added = {"text_embeds": randn(1, pooled), "image_embeds": randn(1, pooled)}
        # Kandinsky 2.1's states enter at encoder_hid_dim and are projected, as with "text_proj".
        projected = c.encoder_hid_dim_type in ("text_proj", "text_image_proj")
        context = c.encoder_hid_dim if projected else c.cross_attention_dim
        # Class-label U-Nets (the x4 upscaler's noise level, unCLIP's image embedding) need class_labels.
        class_labels = None
        if c.class_embed_type is None and c.num_class_embeds is not None:
            class_labels = torch.zeros(1, dtype=torch.long, device=p.device)
        elif c.class_embed_type == "timestep":
            class_labels = timestep
        elif c.class_embed_type == "identity":
            class_labels = randn(1, c.time_embedding_dim or 4 * c.block_out_channels[0])
        elif c.class_embed_type in ("projection", "simple_projection"):
            class_labels = randn(1, c.projection_class_embeddings_input_dim)
        return {
            "sample": randn(1, c.in_channels, side, side),
            "timestep": timestep,
            "encoder_hidden_states": randn(1, 4, context),
            "class_labels": class_labels,
            "added_cond_kwargs": added,
        }
    if isinstance(denoiser, FluxTransformer2DModel):
        h = w = max(side // 2, 1)  # Flux packs 2 x 2 latent pixels into one token
        ids = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1)
        img_ids = torch.cat([torch.zeros(h * w, 1), ids.reshape(-1, 2)], dim=1)
        return {
            "hidden_states": randn(1, h * w, c.in_channels),
            "encoder_hidden_states": randn(1, 4, c.joint_attention_dim),
            "pooled_projections": randn(1, c.pooled_projection_dim),
            "timestep": timestep / 1000,
            "img_ids": img_ids.to(p.device, p.dtype),
            "txt_ids": torch.zeros(4, 3, device=p.device, dtype=p.dtype),
            "guidance": timestep if c.guidance_embeds else None,
        }
    if isinstance(denoiser, SD3Transformer2DModel):
        return {
            "hidden_states": randn(1, c.in_channels, side, side),
            "encoder_hidden_states": randn(1, 4, c.joint_attention_dim),
            "pooled_projections": randn(1, c.pooled_projection_dim),
            "timestep": timestep,
        }
    # PixArt: the size conditions are read only by models that use them (the 1024 px ones).
    return {
        "hidden_states": randn(1, c.in_channels, side, side),
        "encoder_hidden_states": randn(1, 4, c.caption_channels),
        "timestep": timestep,
        "added_cond_kwargs": {
            "resolution": torch.tensor([[8.0 * side] * 2], device=p.device, dtype=p.dtype),
            "aspect_ratio": torch.tensor([[1.0]], device=p.device, dtype=p.dtype),
        },
    }


def _dry_shapes(pipe_or_denoiser: Any, names: list[str], side: int | None) -> dict[str, tuple[int, ...]]:
    """Per-sample image-stream shape of each named layer, from one forward pass of batch 1."""
    _, denoiser = find_denoiser(pipe_or_denoiser)
    shapes: dict[str, tuple[int, ...]] = {}

    def record(act: torch.Tensor, name: str) -> None:
        shapes[name] = tuple(act.shape[1:])

    with torch.no_grad(), patched(pipe_or_denoiser, dict.fromkeys(names, record)):
        denoiser(**dry_inputs(denoiser, side), return_dict=False)
    return shapes


# --------------------------------------------------------------------------------------------------
# Patching
# --------------------------------------------------------------------------------------------------


def resolve(pipe_or_denoiser: Any, name: str) -> nn.Module:
    """The module a layer name points to.

    Args:
        pipe_or_denoiser: a pipeline or its denoiser.
        name: a prefixed module path such as ``"unet.mid_block.resnets.1"``.

    Raises:
        ValueError: for a name that is not a module path of the denoiser (the message lists the
            closest valid names), or that of a container (``ModuleList``: its children are named).
        TypeError: for a name that is not a string.
    """
    if strict_model(pipe_or_denoiser) is not None:  # the autoencoder, the VAE, the GAN (end of this file)
        return _resolve_model_layer(pipe_or_denoiser, name)
    prefix, denoiser = find_denoiser(pipe_or_denoiser)
    if not isinstance(name, str):
        raise TypeError(f"a layer name is a string such as 'unet.mid_block.resnets.1', got {name!r}")
    modules = {f"{prefix}.{path}": m for path, m in denoiser.named_modules() if path}
    if name in modules:
        if isinstance(modules[name], nn.ModuleList | nn.ModuleDict):  # never called: its hook never fires
            children = [f"{name}.{child}" for child, _ in modules[name].named_children()]
            raise ValueError(
                f"{name!r} is a container of layers, never called itself (a hook on it never fires); "
                f"name one of its layers: {children[:6]}"
            )
        return modules[name]
    layers = [f"{prefix}.{path}" for path, _ in _all_layer_paths(denoiser)]
    close = difflib.get_close_matches(name, layers, n=5, cutoff=0.6) or difflib.get_close_matches(
        name, list(modules), n=5, cutoff=0.6
    )
    hint = f"closest valid names: {close}" if close else f"layers are e.g. {layers[:3]}"
    raise ValueError(f"unknown layer {name!r} in this {type(denoiser).__name__}; {hint}")


def _all_layer_paths(denoiser: nn.Module) -> list[tuple[str, str]]:
    if isinstance(denoiser, UNet2DConditionModel):
        return _unet_layers(denoiser, samplers=True)
    return _transformer_layers(denoiser)


@contextmanager
def patched(pipe_or_denoiser: Any, fns: Mapping[str, PatchFn]) -> Iterator[None]:
    """Run the pipeline with ``fns`` patched onto layers' image streams; remove them on exit.

    Each ``fn(activation, name)`` gets the layer's image-stream output (``(B, C, H, W)`` for U-Net
    layers, ``(B, N_image, D)`` for transformer blocks, where ``B`` includes the classifier-free
    guidance copies) and returns a tensor of the same shape to use instead, or ``None`` to keep it.
    The text stream of multi-stream blocks is never touched.

    Args:
        pipe_or_denoiser: a diffusers pipeline or its denoiser.
        fns: ``{layer name: fn}``; any module path of the denoiser is allowed.

    Raises:
        ValueError: for an unknown layer name (before any hook is registered), or when a patch returns
            a tensor of another shape.
    """
    targets = [(name, resolve(pipe_or_denoiser, name), fn) for name, fn in fns.items()]
    handles = []
    try:
        for name, module, fn in targets:
            handles.append(module.register_forward_hook(_tagged(_hook(name, fn)), with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def step_hook(pipe_or_denoiser: Any, fn: Callable[[nn.Module, tuple, dict], None]) -> Iterator[None]:
    """Call ``fn(denoiser, args, kwargs)`` before every denoiser call inside the ``with`` block.

    (How :class:`latentkit.run.StepTracker` counts steps; the hook is tagged and removed on exit.)
    """
    _, denoiser = find_denoiser(pipe_or_denoiser)
    handle = denoiser.register_forward_pre_hook(_tagged(fn), with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


#: The attribute that marks a hook as latentkit's (TransformerLens tags its handles the same way).
HOOK_TAG = "_latentkit_hook"


def _tagged(fn: Callable[..., Any]) -> Callable[..., Any]:
    def hook(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    setattr(hook, HOOK_TAG, True)
    return hook


def is_latentkit_hook(hook: Any) -> bool:
    """Whether a registered hook is one of latentkit's (for the tests' no-hook-left check)."""
    return getattr(hook, HOOK_TAG, False) is True


def _hook(name: str, fn: PatchFn) -> Callable[..., Any]:
    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        image = image_stream(name, module, output, kwargs)
        new = fn(image, name)
        if new is None:
            return None
        if new.shape != image.shape:
            raise ValueError(
                f"the patch on {name!r} returned shape {tuple(new.shape)}, "
                f"the layer's image stream has shape {tuple(image.shape)}"
            )
        return replace_image_stream(name, module, output, new, kwargs)

    return hook


# --------------------------------------------------------------------------------------------------
# Labels and groups, for tables and figures
# --------------------------------------------------------------------------------------------------

#: A layer, or several layers injected together into one copy of O (a tuple, never a joined string).
LayerSpec = str | tuple[str, ...]


def combination_name(spec: LayerSpec) -> str:
    """The display name of a layer or combination: ``("a", "b")`` -> ``"a+b"`` (for tables only)."""
    return spec if isinstance(spec, str) else "+".join(spec)


def group_of(spec: LayerSpec) -> str:
    """A U-Net layer's group from its name (``down``/``mid``/``up``); a combination's, when all of its
    layers share one; else ``""`` (transformer blocks: use :attr:`Layer.group` of :func:`list_layers`)."""
    names = (spec,) if isinstance(spec, str) else spec
    groups = set()
    for name in names:
        parts = name.split(".")
        groups.add(
            next((p.split("_")[0] for p in parts if p in ("down_blocks", "mid_block", "up_blocks")), "")
        )
    return groups.pop() if len(groups) == 1 else ""


_SHORT = {"resnets": "res", "attentions": "attn", "downsamplers": "downsample", "upsamplers": "upsample"}


def layer_label(spec: LayerSpec) -> str:
    """A short label for figures: ``"unet.up_blocks.1.attentions.0"`` -> ``"up1 attn0"``.

    U-Net layers become ``<block><i> <res|attn|downsample|upsample><j>``, transformer blocks
    ``block<i>`` or ``single<i>`` (``"transformer.single_transformer_blocks.3"`` -> ``"single3"``);
    the layers of a combination (a tuple) are joined with ``+``.
    """
    if not isinstance(spec, str):
        return "+".join(layer_label(name) for name in spec)
    parts = spec.split(".")[1:] if spec.split(".")[0] in ("unet", "transformer") else spec.split(".")
    out, i = [], 0
    while i < len(parts):
        part, index = parts[i], parts[i + 1] if i + 1 < len(parts) else ""
        if part in ("down_blocks", "up_blocks") and index.isdigit():
            out.append(f"{part[:-7]}{index}")
            i += 2
        elif part == "mid_block":
            out.append("mid")
            i += 1
        elif part in ("transformer_blocks", "single_transformer_blocks") and index.isdigit():
            out.append(f"{'single' if part.startswith('single') else 'block'}{index}")
            i += 2
        elif part in _SHORT and index.isdigit():
            out.append(f"{_SHORT[part]}{index}")
            i += 2
        else:
            out.append(part)
            i += 1
    return " ".join(out)


# --------------------------------------------------------------------------------------------------
# The strict-sense organisms: the autoencoder, the VAE and the GAN, patched like a denoiser
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrictModel:
    """How a strict-sense organism turns its code into an image, for naming and dry-running its layers.

    Attributes:
        roots: the attributes whose modules turn the code into the picture code, in forward order; their
            layers are named by the module path from the model, e.g. ``"decoder.net.3"``. The frozen
            codec that turns the picture code into pixels (``model.codec``) is never one of them.
        code_dim: the attribute that gives the size of the code (the decoder's only input).
        decode: the method ``(N, code_dim) -> (N, 3, 64, 64)`` images in [0, 1].
    """

    roots: tuple[str, ...]
    code_dim: str
    decode: str


#: ``model class name -> StrictModel``: the models of :mod:`latentkit.models.autoencoder`,
#: :mod:`latentkit.models.vae` and :mod:`latentkit.models.gan`.
STRICT_MODELS: dict[str, StrictModel] = {
    "Autoencoder": StrictModel(("decoder",), "latent_dim", "decode"),
    "VAE": StrictModel(("decoder",), "latent_dim", "decode"),
    "Generator": StrictModel(("mapping", "synthesis", "decoder"), "z_dim", "forward"),  # z -> w -> code
}


def strict_model(model: Any) -> StrictModel | None:
    """The :class:`StrictModel` row of ``model``, or ``None`` for anything else (a pipeline, a denoiser)."""
    return STRICT_MODELS.get(type(model).__name__) if isinstance(model, nn.Module) else None


def _is_activation(module: nn.Module) -> bool:
    return type(module).__module__ == "torch.nn.modules.activation"


def _model_layer_paths(model: nn.Module) -> list[str]:
    """The layers of a strict-sense model, in the order its roots and their ``Sequential`` s define them.

    A layer is a child of a ``Sequential`` directly under one of the roots (``decoder.fc.1``, the
    upsampling block ``decoder.net.0`` as one layer). A child that an elementwise activation follows
    is left out: injecting it and injecting the activation's output are one injection (the activation,
    applied to E's values, gives E's values), so only the activation's output is listed.
    """
    spec = strict_model(model)
    paths = []
    for root in spec.roots:
        for name, container in model.get_submodule(root).named_children():
            if not isinstance(container, nn.Sequential):
                continue
            children = list(container.named_children())
            for j, (child, _) in enumerate(children):
                if j + 1 < len(children) and _is_activation(children[j + 1][1]):
                    continue
                paths.append(f"{root}.{name}.{child}")
    return paths


def list_model_layers(model: nn.Module) -> list[Layer]:
    """The injectable layers of a strict-sense organism's decoder (or generator), in forward order.

    What :func:`list_layers` is for a diffusers denoiser, for the autoencoder, the VAE and the GAN: each
    layer is named by its module path from the model (``"decoder.fc.1"`` ... ``"decoder.net.6"``; the
    GAN's ``"mapping.net.1"`` ... ``"mapping.net.6"`` (which outputs w), ``"synthesis.net.0"`` ... (which
    outputs the bottleneck code), then its autoencoder decoder's ``"decoder.fc.1"`` ...),
    the last one is the model's own last layer, whose output is the 16x16x4 picture code; the frozen
    codec after it (shared by all three organisms, the pixel decoder) is not listed. The names work in
    :func:`patched` as they are. The code itself is no module's output, so it is not a layer here
    (:func:`latentkit.synthesis.strict_layer_injection` injects it as one).

    The order and the shapes come from one dry decoding of a batch-1 code (zeros) with recording patches;
    the model runs in eval mode for it (batch norm must not update its statistics) and gets its mode back.

    Args:
        model: a :class:`~latentkit.models.autoencoder.Autoencoder`, :class:`~latentkit.models.vae.VAE`
            or :class:`~latentkit.models.gan.Generator`.

    Returns:
        One :class:`Layer` per layer, ``depth`` increasing; ``group`` is the root (``"decoder"``,
        ``"mapping"``, ``"synthesis"``), ``shape`` the per-sample output shape (``(256,)``,
        ``(128, 8, 8)`` ...).

    Raises:
        TypeError: for a model that is not one of :data:`STRICT_MODELS`.
    """
    spec = strict_model(model)
    if spec is None:
        raise TypeError(
            f"{type(model).__name__} is not a strict-sense organism ({', '.join(STRICT_MODELS)}); "
            "for a diffusers pipeline or denoiser use list_layers"
        )
    paths = _model_layer_paths(model)
    order: list[str] = []
    shapes: dict[str, tuple[int, ...]] = {}

    def record(act: torch.Tensor, name: str) -> None:
        if name not in shapes:
            order.append(name)
            shapes[name] = tuple(act.shape[1:])

    p = next(model.parameters())
    code = torch.zeros(1, getattr(model, spec.code_dim), device=p.device, dtype=p.dtype)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), patched(model, dict.fromkeys(paths, record)):
            getattr(model, spec.decode)(code)
    finally:
        model.train(was_training)
    return [
        Layer(name, name.split(".")[0], depth, type(model.get_submodule(name)).__name__, shapes[name])
        for depth, name in enumerate(order)
    ]


def _resolve_model_layer(model: nn.Module, name: str) -> nn.Module:
    """:func:`resolve` for a strict-sense organism: any module path of the model outside its codec."""
    if not isinstance(name, str):
        raise TypeError(f"a layer name is a string such as 'decoder.net.3', got {name!r}")
    paths = _model_layer_paths(model)
    if name == "codec" or name.startswith("codec."):
        raise ValueError(
            f"{name!r} is inside the frozen picture codec, the pixel decoder every strict-sense organism "
            f"shares, not this {type(model).__name__}'s representation; its last layer before the codec "
            f"is {paths[-1]!r}"
        )
    modules = {path: m for path, m in model.named_modules() if path and not path.startswith("codec")}
    if name in modules:
        return modules[name]
    close = difflib.get_close_matches(name, paths, n=5, cutoff=0.6) or difflib.get_close_matches(
        name, list(modules), n=5, cutoff=0.6
    )
    hint = f"closest valid names: {close}" if close else f"its layers are {paths}"
    raise ValueError(f"unknown layer {name!r} in this {type(model).__name__}; {hint}")
