"""Static buffers and CUDA graphs for the per-frame work (the GPU fast path; docs/design.md §5).

:class:`StaticGraph` runs a tensor function from input buffers it allocates once per input
shape. Each call copies a new input into its buffer; an input that is the same tensor as last
time and was not modified since (``tensor._version``) is not copied at all (the cached text
embeddings, the per-step timesteps); a buffer the caller writes in place (``token_scale``) costs
one copy of ``[batch, 77]`` values. On CUDA the function is captured once per shape as a CUDA
graph and each call replays it: no Python, no kernel launches one by one, no allocation, no host
synchronisation. A new weight is a new value in the same buffer, so nothing is recaptured. On
the CPU (and with capture off) the very same buffer logic runs the function eagerly, which is
how the tests check it.

The returned tensor is the graph's output buffer: valid until the next call of the same graph.

:class:`FastPath` keeps an eager path standing by: if compiling (torch.compile) or capturing a
CUDA graph fails on a user's card or driver, every part switches to eager for good, with one
warning (log and HUD), and the show goes on. Only failures of *building* the fast path fall back;
an error the eager code would raise too propagates as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    inputs: list[torch.Tensor]  # the static input buffers
    seen: list[torch.Tensor]  # the tensors last copied in (identity check)
    versions: list[int]  # their version counters when copied
    graph: torch.cuda.CUDAGraph | None = None
    output: torch.Tensor | None = None
    calls: int = field(default=0)


class StaticGraph:
    """``fn(*inputs) -> tensor`` over static input buffers; captured as a CUDA graph when ``capture``."""

    def __init__(self, fn: Callable[..., torch.Tensor], *, capture: bool, warmup: int = 2) -> None:
        self.fn = fn
        self.capture = capture
        self.warmup = warmup
        self.entries: dict[tuple, _Entry] = {}  # one per input shape/dtype/device

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        key = tuple((tuple(x.shape), x.dtype, x.device) for x in inputs)
        e = self.entries.get(key)
        if e is None:
            e = self.entries[key] = self._build(inputs)
        else:
            for i, x in enumerate(inputs):
                if x is not e.seen[i] or x._version != e.versions[i]:
                    e.inputs[i].copy_(x)
                    e.seen[i], e.versions[i] = x, x._version
        if e.graph is not None:
            e.graph.replay()
        else:
            e.output = self.fn(*e.inputs)
        e.calls += 1
        assert e.output is not None
        return e.output

    def _build(self, inputs: tuple[torch.Tensor, ...]) -> _Entry:
        bufs = [x.clone() for x in inputs]
        e = _Entry(inputs=bufs, seen=list(inputs), versions=[x._version for x in inputs])
        if not self.capture:
            return e
        try:
            e.graph, e.output = self._capture(bufs)
        except Exception as exc:  # noqa: BLE001 - the compile/capture boundary: FastPath falls back to eager
            raise CaptureFailed(f"{type(exc).__name__}: {_first_line(exc)}") from exc
        return e

    def _capture(self, bufs: list[torch.Tensor]) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        """Warm up (compiles) and capture ``fn`` over ``bufs``: the graph and its output buffer."""
        # warm up on a side stream (compiles, autotunes, initialises cuBLAS/cuDNN), then capture
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.fn(*bufs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = self.fn(*bufs)
        return graph, output


class CaptureFailed(RuntimeError):
    """Warming up (compiling) or capturing a CUDA graph failed; the eager path can still run."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:200] if text else "") or type(exc).__name__


def _describe(exc: BaseException) -> str:
    """``Type: first line`` of what really failed (a capture's or a compile's inner error, when there is one)."""
    inner = exc.__cause__ if isinstance(exc, CaptureFailed) else getattr(exc, "inner_exception", None)
    if isinstance(inner, BaseException):
        return f"{type(exc).__name__} ({type(inner).__name__}: {_first_line(inner)})"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _fast_path_errors() -> tuple[type[BaseException], ...]:
    """What building the fast path raises: a failed capture, and torch.compile's own errors (dynamo's
    ``BackendCompilerFailed`` for an inductor or Triton failure, ...)."""
    from torch._dynamo.exc import TorchDynamoException

    return (CaptureFailed, TorchDynamoException)


class FastPath:
    """A compiled and/or captured path with an eager one standing by.

    ``wrap(fast, eager, what)`` returns a callable that runs ``fast`` until building it fails
    (:class:`CaptureFailed`, torch.compile's errors), then ``eager`` from then on; the first failure
    switches every wrapped part (the UNet and the decoder) at once and calls ``on_fallback`` once with
    what failed. Any other error propagates: it is not the fast path's fault.
    """

    def __init__(self, on_fallback: Callable[[str], None]) -> None:
        self.failure: str | None = None  # NB: set by the rendering thread, read by the HUD
        self._on_fallback = on_fallback
        self._errors = _fast_path_errors()

    def wrap(self, fast: Callable[..., torch.Tensor], eager: Callable[..., torch.Tensor],
             what: str) -> Callable[..., torch.Tensor]:
        def run(*inputs: torch.Tensor) -> torch.Tensor:
            if self.failure is None:
                try:
                    return fast(*inputs)
                except self._errors as exc:
                    self.failure = f"{what}: {_describe(exc)}"
                    self._on_fallback(self.failure)
            return eager(*inputs)

        return run


class ToImage:
    """``latents [n, c, h, w] -> [n, height, width, 3] uint8`` on the device: VAE scale and shift,
    decode, clamp, round."""

    def __init__(self, decode: Callable[..., torch.Tensor], scaling_factor: float, shift_factor: float,
                 dtype: torch.dtype) -> None:
        self.decode = decode
        self.scaling_factor = scaling_factor
        self.shift_factor = shift_factor
        self.dtype = dtype

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        z = latents / self.scaling_factor + self.shift_factor
        img = self.decode(z.to(self.dtype)).float()
        return ((img.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class ScaleBuffer:
    """``token_scale`` (``[batch, tokens]``) allocated once and written in place per frame.

    ``weight`` at ``positions`` of the conditional (last) row, 1 elsewhere: a fill and a masked fill
    with the weight as a scalar argument, the mask built once per set of positions; so a new weight
    costs two tiny kernels: no allocation, no host-to-device copy.
    """

    def __init__(self, batch: int, tokens: int, dtype: torch.dtype, device: torch.device) -> None:
        self.tensor = torch.ones(batch, tokens, dtype=dtype, device=device)
        self._mask = torch.zeros(batch, tokens, dtype=torch.bool, device=device)
        self._positions: tuple[int, ...] = ()

    def write(self, weight: float, positions: list[int] | tuple[int, ...]) -> torch.Tensor:
        pos = tuple(positions)
        if pos != self._positions:  # the words changed (seconds apart): rebuild the mask
            self._mask.zero_()
            if pos:
                self._mask[-1, list(pos)] = True
            self._positions = pos
        self.tensor.fill_(1.0)
        self.tensor.masked_fill_(self._mask, float(weight))
        return self.tensor
