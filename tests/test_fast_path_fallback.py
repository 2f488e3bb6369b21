"""A compile, a CUDA-graph capture or an engine load that fails falls back (eager, torch) with one warning.

No GPU here: the failures are injected at the boundary (a compiled UNet that raises torch.compile's own
error, a capture that raises, an ONNX/TensorRT engine that cannot be loaded). Errors that are not the fast
path's fault still propagate.
"""

from __future__ import annotations

import logging
import types

import numpy as np
import pytest
import torch

from aadiff_live.backends.base import Backend
from aadiff_live.rendering.static import CaptureFailed, FastPath, StaticGraph

CPU = torch.device("cpu")


def _compile_error() -> Exception:
    from torch._dynamo.exc import BackendCompilerFailed

    return BackendCompilerFailed(None, RuntimeError("triton: no kernel image is available for this GPU"), None)


@pytest.fixture(scope="module")
def eager(tiny_components):
    from aadiff_live.backends.torch_backend import torch_backend

    return torch_backend(tiny_components, CPU, torch.float32, compile=False)


def _renderer(components, backend):
    from aadiff_live.rendering.pipeline import Renderer

    r = Renderer(components, backend, width=64, height=64, static=True)
    r.prepare("a fire on a hill")
    return r


def test_a_compile_that_raises_falls_back_to_eager_with_one_warning(tiny_components, eager, caplog):
    ref = _renderer(tiny_components, eager).render(1.5, [2])
    calls = {"n": 0}

    def compiled_unet(*a):
        calls["n"] += 1
        raise _compile_error()

    compiled = Backend(name="torch", description="torch (compiled)", unet=compiled_unet, decode=eager.decode,
                       device=CPU, dtype=torch.float32, eager_unet=eager.unet, eager_decode=eager.decode)
    r = _renderer(tiny_components, compiled)
    with caplog.at_level(logging.WARNING):
        got = r.render(1.5, [2])
        again = r.render(1.5, [2])
        batch = r.render_batch([0.0, 1.5], [2])
    np.testing.assert_array_equal(got, ref)  # the eager path draws the same frame
    np.testing.assert_array_equal(again, ref)
    assert np.abs(batch[1].astype(int) - ref).max() <= 1  # a batch row: within 1/255 of the frame alone
    assert calls["n"] == 1  # never tried again once fallen back
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "COMPILE FAILED" in warnings[0].getMessage()
    assert "BackendCompilerFailed" in warnings[0].getMessage() and "no kernel image" in warnings[0].getMessage()
    assert r.alert is not None and r.alert.startswith("COMPILE FAILED, running eager")


def test_a_capture_that_raises_falls_back_to_eager(monkeypatch):
    def capture(self, bufs):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")

    monkeypatch.setattr(StaticGraph, "_capture", capture)
    told: list[str] = []
    gate = FastPath(told.append)
    fn = lambda x: x * 2 + 1  # noqa: E731
    unet = gate.wrap(StaticGraph(fn, capture=True), StaticGraph(fn, capture=False), "the UNet")
    decode = gate.wrap(lambda x: pytest.fail("the decoder's fast path runs after the fall-back"),
                       lambda x: x - 1, "the decoder")
    x = torch.arange(4.0)
    assert torch.equal(unet(x), fn(x))
    assert torch.equal(decode(x), x - 1)  # one failure switches every part
    assert told == ["the UNet: CaptureFailed (RuntimeError: CUDA error: operation not permitted when stream is "
                    "capturing)"]
    assert torch.equal(unet(x + 1), fn(x + 1)) and len(told) == 1


def test_other_errors_are_not_swallowed():
    told: list[str] = []
    gate = FastPath(told.append)

    def bug(x):
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError, match="shape mismatch"):
        gate.wrap(bug, lambda x: x, "the UNet")(torch.zeros(1))
    assert gate.failure is None and not told

    def capture_fails(x):
        raise CaptureFailed("RuntimeError: capture")

    with pytest.raises(ValueError, match="shape mismatch"):  # the eager path's own error surfaces as it is
        gate.wrap(capture_fails, bug, "the UNet")(torch.zeros(1))
    assert gate.failure is not None


def test_an_onnx_engine_that_does_not_load_falls_back_to_torch(tiny_components, tmp_path, monkeypatch, caplog):
    pytest.importorskip("onnxruntime")
    from aadiff_live.backends import make_backend, onnx_backend

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx graph")
    fake = types.SimpleNamespace(files={"onnx": bad}, folder=tmp_path / "engine")
    monkeypatch.setattr(onnx_backend, "ensure_onnx_engines", lambda *a, **k: [fake, fake] if not k.get("parts")
                        else [fake])
    with caplog.at_level(logging.WARNING):
        backend = make_backend("onnxruntime", tiny_components, CPU, torch.float32, width=64, height=64)
    assert backend.name == "torch" and "instead of onnxruntime" in backend.description
    assert backend.alert is not None and "ENGINE FAILED" in backend.alert and str(bad) in backend.alert
    assert any("ENGINE FAILED" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    r = _renderer(tiny_components, backend)
    assert r.alert == backend.alert and r.render(1.0, [2]).shape == (64, 64, 3)  # the show goes on


def test_a_tensorrt_plan_that_does_not_load_falls_back_to_torch(tiny_components, tmp_path, monkeypatch):
    from aadiff_live.backends import make_backend, tensorrt_backend

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return None  # what TensorRT returns for a plan from another version or GPU

    fake_trt = types.SimpleNamespace(Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda s, lvl: None}),
                                     Runtime=Runtime, __version__="10.0")
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"plan")
    engine = types.SimpleNamespace(files={"plan": plan}, folder=tmp_path, spec=types.SimpleNamespace(precision="fp16"))
    monkeypatch.setattr(tensorrt_backend, "_trt", lambda: fake_trt)
    monkeypatch.setattr(tensorrt_backend, "_check_device", lambda device: None)
    monkeypatch.setattr(tensorrt_backend, "ensure_tensorrt_engines", lambda *a, **k: (engine, engine))
    backend = make_backend("tensorrt", tiny_components, CPU, torch.float32, width=64, height=64)
    assert backend.name == "torch" and backend.alert is not None and str(plan) in backend.alert


def test_the_hud_shows_the_fallback():
    from aadiff_live.live.health import Health

    renderer = types.SimpleNamespace(alert=None)
    idle = types.SimpleNamespace(alert=lambda: None)
    health = Health(types.SimpleNamespace(stalled=lambda now: False), analysis=types.SimpleNamespace(supervisor=idle),
                    render_thread=types.SimpleNamespace(supervisor=idle, renderer=renderer), clap=None, recorder=None,
                    more_alerts=list)
    assert health.alerts() == []
    renderer.alert = "COMPILE FAILED, running eager: the UNet: BackendCompilerFailed (...)"
    assert health.alerts() == [renderer.alert]
