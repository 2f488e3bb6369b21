"""Export the reweighting UNet and the VAE decoder to ONNX (docs/design.md §2, §5).

The UNet graph takes ``sample``, ``timestep``, ``encoder_hidden_states`` and ``token_scale``
(``[batch, tokens]``; SDXL also ``text_embeds`` and ``time_ids``): the token weights are an ordinary input, so one export serves every
prompt and every weight. The decoder graph takes ``latents`` and returns ``image`` in [-1, 1].

Exporter: torch's TorchScript exporter (``dynamo=False``). On torch 2.13 it traces diffusers'
UNet2DConditionModel with the value-scaling processor in about a second for the tiny model and
matches torch to ~5e-6 in ONNX Runtime; the batch axis is dynamic (1 without guidance, 2 with).
Weights are written to ONE external-data file next to the graph (``<name>.onnx.data``), whatever
the size, so an engine folder holds exactly two ONNX files.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

OPSET = 17
UNET_INPUTS = ("sample", "timestep", "encoder_hidden_states", "token_scale")
SDXL_INPUTS = ("text_embeds", "time_ids")  # SDXL's pooled text embeddings and time ids, after UNET_INPUTS
UNET_OUTPUTS = ("noise",)
DECODER_INPUTS = ("latents",)
DECODER_OUTPUTS = ("image",)


@dataclass(frozen=True)
class GraphShape:
    """Static sizes of one export: latent size, text length and width, batch used for tracing."""

    latent_channels: int
    latent_height: int
    latent_width: int
    tokens: int = 77
    text_dim: int = 768
    batch: int = 1
    pooled_dim: int = 0  # SDXL: width of the pooled text embeddings (then the graph also takes time ids)


def unet_input_names(shape: GraphShape) -> tuple[str, ...]:
    return UNET_INPUTS + (SDXL_INPUTS if shape.pooled_dim else ())


def unet_example(shape: GraphShape, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    b = shape.batch
    sample = torch.randn(b, shape.latent_channels, shape.latent_height, shape.latent_width, generator=g)
    timestep = torch.full((b,), 999.0)
    ehs = torch.randn(b, shape.tokens, shape.text_dim, generator=g)
    scale = torch.ones(b, shape.tokens)
    out: tuple[torch.Tensor, ...] = (sample.to(dtype), timestep, ehs.to(dtype), scale.to(dtype))
    if shape.pooled_dim:
        pooled = torch.randn(b, shape.pooled_dim, generator=g)
        h, w = shape.latent_height * 8, shape.latent_width * 8
        time_ids = torch.tensor([[h, w, 0, 0, h, w]], dtype=torch.float32).expand(b, 6)
        out = (*out, pooled.to(dtype), time_ids.to(dtype))
    return out


def decoder_example(shape: GraphShape, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(1, shape.latent_channels, shape.latent_height, shape.latent_width, generator=g)
    return (z.to(dtype),)


def _export(module: torch.nn.Module, args: tuple, out: Path, inputs: tuple[str, ...], outputs: tuple[str, ...],
            dynamic_hw: bool = False) -> None:
    """Trace ``module`` to ``out`` (+ ``out.data``): graph and one external-data file.

    The batch axis is dynamic; ``dynamic_hw`` also frees height and width of 4-d inputs and the
    output (engines are built per size; the benchmark reuses one graph for several sizes).
    """
    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {name: {0: "batch"} for name in (*inputs, *outputs)}
    if dynamic_hw:
        four_d = [n for n, a in zip(inputs, args, strict=True) if a.ndim == 4] + list(outputs)
        for name in four_d:
            dynamic[name].update({2: "height", 3: "width"})
    with tempfile.TemporaryDirectory(prefix="aadiff-onnx-", dir=out.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer warns about every shape-dependent Python branch in diffusers; the
            # branches taken are those of the traced shapes, which is what we build for
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(raw), input_names=list(inputs), output_names=list(outputs),
                              dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True)
        # Over 2 GB the exporter writes one file per tensor; re-pack into exactly one file.
        model = onnx.load(str(raw), load_external_data=True)
        data_name = out.name + ".data"
        for stale in (out, out.with_name(data_name)):
            stale.unlink(missing_ok=True)
        onnx.save_model(model, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=0, convert_attribute=False)
    onnx.checker.check_model(str(out))  # by path: works above 2 GB


@contextmanager
def on_cpu(module: torch.nn.Module, dtype: torch.dtype):
    """``module`` on the CPU in ``dtype``, in eval mode, for the duration of the block; the module it
    was handed is left as it was: moved back afterwards, or, where the dtype differs, a copy is used
    (casting back and forth would lose precision)."""
    p = next(module.parameters(), None)
    if p is not None and p.dtype != dtype:
        yield copy.deepcopy(module).to(device="cpu", dtype=dtype).eval()
        return
    device = p.device if p is not None else torch.device("cpu")
    modes = [(m, m.training) for m in module.modules()]  # a wrapper and what it wraps may differ
    module.to(device="cpu").eval()
    try:
        yield module
    finally:
        module.to(device=device)
        for m, training in modes:
            m.training = training


def export_unet(unet_with_scale: torch.nn.Module, out: Path, shape: GraphShape, dtype: torch.dtype,
                dynamic_hw: bool = False) -> None:
    """Export a :class:`~aadiff_live.backends.torch_backend.UNetWithScale` (CPU, ``dtype``)."""
    with on_cpu(unet_with_scale, dtype) as module:
        _export(module, unet_example(shape, dtype), out, unet_input_names(shape), UNET_OUTPUTS, dynamic_hw)


def export_decoder(decoder: torch.nn.Module, out: Path, shape: GraphShape, dtype: torch.dtype,
                   dynamic_hw: bool = False) -> None:
    """Export a :class:`~aadiff_live.backends.torch_backend.Decoder` (KL or tiny autoencoder)."""
    with on_cpu(decoder, dtype) as module:
        _export(module, decoder_example(shape, dtype), out, DECODER_INPUTS, DECODER_OUTPUTS, dynamic_hw)
