"""ONNX export and the ONNX Runtime backend on the tiny model (64x64, CPU, seconds)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from aadiff_live.backends.onnx_backend import engine_specs, ensure_onnx_engines, onnx_backend
from aadiff_live.backends.torch_backend import Decoder, UNetWithScale
from aadiff_live.models.attention import install_reweighting
from aadiff_live.models.loading import load_components

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    comps = load_components("tiny")
    return root, comps, ensure_onnx_engines(comps, CPU, torch.float32, width=64, height=64, engines_dir=root)


def test_graph_matches_torch_for_several_weights_without_reexport(engines):
    import onnxruntime as ort

    root, comps, (unet_e, _) = engines
    sess = ort.InferenceSession(str(unet_e.files["onnx"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["sample", "timestep", "encoder_hidden_states", "token_scale"]
    unet = load_components("tiny").unet
    install_reweighting(unet)
    torch_unet = UNetWithScale(unet).eval()
    g = torch.Generator().manual_seed(3)
    for batch in (1, 2):
        s = torch.randn(batch, 4, 16, 16, generator=g)
        t = torch.full((batch,), 500.0)
        e = torch.randn(batch, 77, 32, generator=g)
        outs = []
        for w in (0.0, 1.0, 2.5, 5.0):
            c = torch.ones(batch, 77)
            c[-1, 1:6] = w
            with torch.no_grad():
                ref = torch_unet(s, t, e, c).numpy()
            got = sess.run(None, {"sample": s.numpy(), "timestep": t.numpy(), "encoder_hidden_states": e.numpy(),
                                  "token_scale": c.numpy()})[0]
            assert np.abs(got - ref).max() <= 1e-4, (batch, w)
            outs.append(got)
        assert np.abs(outs[0] - outs[2]).max() > 1e-2  # the weight input really changes the output


def test_graph_takes_one_scale_per_routed_word_unchanged(engines):
    """Routed words (docs/design.md §1.6): each row of ``token_scale`` carries several different values at
    different token positions; the graph exported once for one weight takes them as they are."""
    import onnx
    import onnxruntime as ort

    root, comps, (unet_e, _) = engines
    model = onnx.load(str(unet_e.files["onnx"]), load_external_data=False)
    ts = next(i for i in model.graph.input if i.name == "token_scale")
    dims = [d.dim_param or d.dim_value for d in ts.type.tensor_type.shape.dim]
    assert dims == ["batch", 77]  # one value per token and row: no notion of how many words
    sess = ort.InferenceSession(str(unet_e.files["onnx"]), providers=["CPUExecutionProvider"])
    unet = load_components("tiny").unet
    install_reweighting(unet)
    torch_unet = UNetWithScale(unet).eval()
    g = torch.Generator().manual_seed(4)
    batch = 4  # a batch of grid cells, as the atlas fills them
    s = torch.randn(batch, 4, 16, 16, generator=g)
    t = torch.full((batch,), 500.0)
    e = torch.randn(batch, 77, 32, generator=g)
    c = torch.ones(batch, 77)
    pairs = [(0.2, 1.8), (1.8, 0.2), (0.0, 3.0), (1.0, 1.0)]
    for row, (a, b) in enumerate(pairs):
        c[row, 1:3], c[row, 5:8] = a, b  # word one's tokens, word two's tokens
    with torch.no_grad():
        ref = torch_unet(s, t, e, c).numpy()
    got = sess.run(None, {"sample": s.numpy(), "timestep": t.numpy(), "encoder_hidden_states": e.numpy(),
                          "token_scale": c.numpy()})[0]
    assert np.abs(got - ref).max() <= 1e-4
    # swapping the two words' values changes the output: the graph sees two different scales
    assert np.abs(got[0] - got[1]).max() > 1e-2


def test_onnx_renderer_grid_matches_torch(engines, tiny_components):
    """A batch of weight vectors through the ONNX Runtime backend equals the torch backend's."""
    from aadiff_live.backends import make_backend
    from aadiff_live.rendering.pipeline import Renderer

    root, comps, _ = engines
    prompt = "thunder and rain over a dark sea"
    rs = []
    for backend in (onnx_backend(comps, CPU, torch.float32, width=64, height=64, engines_dir=root),
                    make_backend("torch", comps, CPU, torch.float32)):
        r = Renderer(comps, backend, width=64, height=64, seed=1)
        r.prepare(prompt)
        rs.append(r)
    from aadiff_live.tokens.words import word_positions

    found = word_positions(comps.tokenizer, prompt, ["thunder", "rain"])
    groups = [found["thunder"], found["rain"]]
    points = [(0.0, 2.0), (2.0, 0.0), (0.5, 1.5)]
    a, b = (r.render_batch(points, groups) for r in rs)
    assert np.abs(a.astype(int) - b).max() <= 2
    assert np.abs(a[0].astype(int) - a[1]).mean() > 0.5


def test_decoder_graph_matches_torch(engines):
    import onnxruntime as ort

    _, comps, (_, dec_e) = engines
    sess = ort.InferenceSession(str(dec_e.files["onnx"]), providers=["CPUExecutionProvider"])
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = Decoder(load_components("tiny").vae).eval()(z).numpy()
    assert np.abs(sess.run(None, {"latents": z.numpy()})[0] - ref).max() <= 1e-4


def test_weights_in_one_external_data_file(engines):
    import onnx
    from onnx.external_data_helper import uses_external_data

    _, _, found = engines
    for e in found:
        model = onnx.load(str(e.files["onnx"]), load_external_data=False)
        locations = {dict((d.key, d.value) for d in t.external_data)["location"]
                     for t in model.graph.initializer if uses_external_data(t)}
        assert locations == {"model.onnx.data"}
        onnx_files = sorted(p.name for p in e.folder.iterdir() if "onnx" in p.name)
        assert onnx_files == ["model.onnx", "model.onnx.data"]


def test_tiny_autoencoder_engine_and_backend(tmp_path):
    comps = load_components("tiny", vae="tiny")
    backend = onnx_backend(comps, CPU, torch.float32, width=64, height=64, engines_dir=tmp_path)
    assert any("decoder-tiny" in p.name for p in tmp_path.iterdir())
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    img = backend.decode(z)
    assert img.shape == (1, 3, 64, 64)
    with torch.no_grad():
        ref = Decoder(comps.vae)(z)
    assert (img - ref).abs().max() <= 1e-4
    # the random TAESD is centred: a visible picture, not a black frame
    assert -0.5 < float(img.mean()) < 0.8 and float(img.std()) > 0.05


def test_reuse_stale_and_corrupt(engines, caplog):
    root, comps, (unet_e, _) = engines
    stamp = unet_e.files["onnx"].stat().st_mtime_ns
    caplog.set_level("INFO")
    ensure_onnx_engines(comps, CPU, torch.float32, width=64, height=64, engines_dir=root)
    assert unet_e.files["onnx"].stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert "reusing" in caplog.text

    # corrupt: a truncated graph is rejected with a message and rebuilt
    data = unet_e.files["onnx"].read_bytes()
    unet_e.files["onnx"].write_bytes(data[: len(data) // 2])
    caplog.clear()
    ensure_onnx_engines(comps, CPU, torch.float32, width=64, height=64, engines_dir=root)
    assert "corrupt" in caplog.text and "truncated" in caplog.text
    assert unet_e.files["onnx"].read_bytes() == data

    # corrupt: an unreadable manifest
    (unet_e.folder / "manifest.json").write_text("{not json", encoding="utf-8")
    caplog.clear()
    ensure_onnx_engines(comps, CPU, torch.float32, width=64, height=64, engines_dir=root)
    assert "corrupt" in caplog.text and "manifest.json is unreadable" in caplog.text

    # stale: other weights under the same model name and size (a changed identity)
    other = load_components("tiny", seed_tiny=7)
    assert engine_specs(other, width=64, height=64, precision="fp32")[0].identity != \
        engine_specs(comps, width=64, height=64, precision="fp32")[0].identity
    caplog.clear()
    ensure_onnx_engines(other, CPU, torch.float32, width=64, height=64, engines_dir=root, parts=("unet",))
    assert "stale" in caplog.text and "identity" in caplog.text


def test_build_false_refuses_and_auto_does_not_build(tmp_path):
    from aadiff_live.backends import pick_auto
    from aadiff_live.errors import UserError

    comps = load_components("tiny")
    with pytest.raises(UserError, match="build-engine"):
        ensure_onnx_engines(comps, CPU, torch.float32, width=64, height=64, engines_dir=tmp_path, build=False)
    name, why = pick_auto(comps, CPU, torch.float32, width=64, height=64, engines_dir=tmp_path)
    assert name == "torch" and "build-engine" in why
    assert not any(tmp_path.iterdir())
    ensure_onnx_engines(comps, CPU, torch.float32, width=64, height=64, engines_dir=tmp_path)
    assert pick_auto(comps, CPU, torch.float32, width=64, height=64, engines_dir=tmp_path)[0] == "onnxruntime"


def test_export_leaves_the_components_it_was_handed_as_they_were(tmp_path):
    from aadiff_live.backends.onnx_export import on_cpu

    comps = load_components("tiny")
    before = {name: type(p) for name, p in comps.unet.attn_processors.items()}
    training = comps.unet.training
    ensure_onnx_engines(comps, CPU, torch.float32, width=64, height=64, engines_dir=tmp_path)
    # the reweighting processors were installed only while exporting (they used to stay)
    assert {name: type(p) for name, p in comps.unet.attn_processors.items()} == before
    assert comps.unet.training == training and next(comps.unet.parameters()).dtype == torch.float32
    lin = torch.nn.Linear(2, 2).train()
    with on_cpu(lin, torch.float16) as half:  # another dtype: a copy, never a round trip of the weights
        assert half is not lin and half.weight.dtype == torch.float16
    with on_cpu(lin, torch.float32) as same:
        assert same is lin and not same.training
    assert lin.weight.dtype == torch.float32 and lin.training
