"""The static-buffer frame path (the CUDA fast path's logic, run on the CPU without capture)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aadiff_live.backends import make_backend
from aadiff_live.backends.torch_backend import torch_backend
from aadiff_live.rendering.pipeline import Renderer
from aadiff_live.rendering.static import ScaleBuffer, StaticGraph

POS = [1, 2, 3, 4]


@pytest.mark.parametrize("batch", [1, 2])
def test_scale_buffer_is_written_in_place_and_matches_token_scale(tiny_components, batch):
    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32)
    r = Renderer(tiny_components, backend, width=64, height=64, guidance=5.0 if batch == 2 else 0.0)
    buf = ScaleBuffer(batch, r.n_tokens, torch.float32, torch.device("cpu"))
    ptr = buf.tensor.data_ptr()
    for w, pos in [(1.7, POS), (0.0, POS), (2.5, [3]), (0.3, [])]:
        out = buf.write(w, pos)
        assert out is buf.tensor and out.data_ptr() == ptr
        torch.testing.assert_close(out, r.token_scale(pos, w), rtol=0, atol=0)


def test_static_graph_copies_only_what_changed():
    calls = []

    def fn(a, b):
        calls.append(1)
        return a * 2 + b

    g = StaticGraph(fn, capture=False)
    x, y = torch.ones(3), torch.full((3,), 5.0)
    assert g(x, y).tolist() == [7.0, 7.0, 7.0]
    (entry,) = g.entries.values()
    bufs = [b.data_ptr() for b in entry.inputs]
    assert g(torch.full((3,), 2.0), y).tolist() == [9.0] * 3  # a new tensor: copied in
    y.mul_(2)  # written in place: its version changes, so it is copied again
    assert g(torch.full((3,), 2.0), y).tolist() == [14.0] * 3
    entry.inputs[1].fill_(100.0)  # the same, unmodified tensor is not copied again
    assert g(torch.full((3,), 2.0), y).tolist() == [104.0] * 3
    assert [b.data_ptr() for b in entry.inputs] == bufs and len(g.entries) == 1
    g(torch.ones(2), torch.ones(2))  # another shape: its own buffers
    assert len(g.entries) == 2


@pytest.mark.parametrize("guidance", [0.0, 4.0])
def test_static_renderer_equals_eager_and_reuses_its_buffers(tiny_components, guidance):
    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32)
    eager = Renderer(tiny_components, backend, width=64, height=64, steps=2, guidance=guidance, seed=5)
    static = Renderer(tiny_components, backend, width=64, height=64, steps=2, guidance=guidance, seed=5,
                      static=True)
    assert not eager.static and static.static and not static.graphs  # no capture on the CPU
    eager.prepare("fire over water")
    static.prepare("fire over water")
    frames = []
    for w in (1.0, 2.2, 0.0, 2.2):
        a, b = eager.render(w, POS), static.render(w, POS)
        np.testing.assert_array_equal(a, b)
        frames.append(b)
        if w == 1.0:  # the buffers the first frame allocated
            unet_bufs = [t.data_ptr() for e in static._unet.entries.values() for t in e.inputs]
            scale_ptr = static._scale.tensor.data_ptr()
    assert np.abs(frames[1].astype(float) - frames[2]).mean() > 1.0  # the weight written in place moves it
    np.testing.assert_array_equal(frames[1], frames[3])
    assert len(static._unet.entries) == 1 and len(static._image.entries) == 1
    assert [t.data_ptr() for e in static._unet.entries.values() for t in e.inputs] == unet_bufs
    assert static._scale.tensor.data_ptr() == scale_ptr
    frames[3][:] = 0  # the caller owns its frame: the next render does not write into it
    assert static.render(2.2, POS).any()


def test_compile_is_for_cuda(tiny_components, cli, tmp_path):
    b = torch_backend(tiny_components, torch.device("cpu"), torch.float32)  # default: off on the CPU
    assert not b.graphs and "compile" not in b.description
    code, _, err = cli("render", "--demo", "--compile", "--device", "cpu", "--out", tmp_path / "x.mp4")
    assert code == 2 and "--compile" in err and "CUDA" in err and "Traceback" not in err
    errors = [ln for ln in err.splitlines() if "error" in ln]
    assert errors == [err.strip().splitlines()[-1]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_renderer_follows_the_weight_without_recapture(tiny_components):
    dev = torch.device("cuda")
    eager = Renderer(tiny_components, torch_backend(tiny_components, dev, torch.float32, compile=False),
                     width=64, height=64, static=False)
    fast = Renderer(tiny_components, torch_backend(tiny_components, dev, torch.float32, compile=True),
                    width=64, height=64)
    assert fast.graphs
    eager.prepare("fire over water")
    fast.prepare("fire over water")
    for w in (0.0, 1.0, 2.0):
        diff = np.abs(eager.render(w, POS).astype(float) - fast.render(w, POS))
        assert diff.mean() < 0.5
    assert len(fast._unet.entries) == 1


def test_compile_flag_reaches_the_config(tmp_path):
    from aadiff_live.cli import _overrides, build_parser
    from aadiff_live.config import load_config

    for flag, want in (("--compile", True), ("--no-compile", False), (None, None)):
        args = build_parser().parse_args(["render", "--out", "x.mp4", *([flag] if flag else [])])
        assert load_config(None, _overrides(args)).model.compile is want
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  compile: false\n")
    assert load_config(cfg).model.compile is False
