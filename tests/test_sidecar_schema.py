"""Every kind of sidecar (render, render --exact, analyse, live) validates against docs/sidecar.schema.json,
and a row's field means the same in every kind that has it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

jsonschema = pytest.importorskip("jsonschema")

from aadiff_live.output.sidecar import SCHEMA_VERSION, read_rows, rows_path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "docs" / "sidecar.schema.json").read_text())
TINY = ["--model", "tiny", "--size", "64", "--tokens", "fire"]
SR = 16000


def _validators():
    cls = jsonschema.validators.validator_for(SCHEMA)
    cls.check_schema(SCHEMA)
    row_schema = {"$ref": "#/$defs/row", "$defs": SCHEMA["$defs"]}
    return cls(SCHEMA), cls(row_schema)


def check(sidecar: Path, kind: str) -> list[dict]:
    """Validate the sidecar and every row; its rows."""
    doc, row = _validators()
    data = json.loads(sidecar.read_text())
    doc.validate(data)
    assert data["kind"] == kind and data["schema_version"] == SCHEMA_VERSION
    rows = read_rows(sidecar)
    assert len(rows) == data["n_frames"] > 0
    assert data["frames_file"] == rows_path(sidecar).name
    for r in rows:
        row.validate(r)
    frames = [r["frame"] for r in rows]
    assert frames == list(range(frames[0], frames[0] + len(rows)))  # consecutive (live: from its first slot)
    t = np.array([r["time"] for r in rows])
    assert np.all(np.diff(t) > 0)
    return rows


@pytest.fixture()
def wav(tmp_path):
    t = np.arange(2 * SR) / SR
    x = (0.3 * (t % 0.5 < 0.25) * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, SR)
    return tmp_path / "in.wav"


@pytest.mark.parametrize("exact", [False, True])
def test_render_sidecar(cli, tmp_path, wav, exact):
    out = tmp_path / "o.mp4"
    code, _, err = cli("render", "--audio", wav, "--prompt", "a fire", "--out", out, *TINY, "--levels", "9",
                       "--fps", "10", *(["--exact"] if exact else []))
    assert code == 0, err
    rows = check(tmp_path / "o.mp4.json", "render")
    assert rows[1]["time"] == pytest.approx(1 / 10, abs=1e-5)
    assert all(r["exact"] is exact for r in rows)
    if not exact:
        assert all(len(r["levels"]) == 2 and 0 <= r["blend"] < 1 for r in rows)


def test_analyse_sidecar(cli, tmp_path, wav):
    code, _, err = cli("analyse", wav, "--json", tmp_path / "a.json")
    assert code == 0, err
    rows = check(tmp_path / "a.json", "analyse")
    assert (tmp_path / "a.frames.jsonl").is_file()
    assert rows[0]["sources"] and "loudness" in rows[0]["sources"]


def test_render_and_analyse_rows_agree(cli, tmp_path, wav):
    """The same sound and envelope: the fields the two kinds share hold the same values."""
    assert cli("render", "--audio", wav, "--prompt", "a fire", "--out", tmp_path / "o.mp4", *TINY)[0] == 0
    assert cli("analyse", wav, "--json", tmp_path / "a.json")[0] == 0
    r, a = read_rows(tmp_path / "o.mp4.json"), read_rows(tmp_path / "a.json")
    shared = ("frame", "time", "raw", "smoothed", "normalised", "rms_db", "weight")
    assert [[x[k] for k in shared] for x in r] == [[x[k] for k in shared] for x in a]


def test_live_recorder_sidecar(tmp_path):
    from test_live_recorder import T0, Clock, frame, make_ring

    from aadiff_live.live.recorder import Recorder

    ring, _ = make_ring(2.0)
    stop = threading.Event()
    rec = Recorder(tmp_path / "set.mp4", ring, 30.0, 64, 64, stop, clock=Clock(T0 + 2.0))
    rec.start()
    for i in range(30):
        rec.add(frame(i), T0 + i / 30 + 0.05, {"gain": 1.0, "scene": None, "exact": True})
    stop.set()
    rec.join(timeout=10)
    rec.finish({"frames_shown": 30})
    rows = check(tmp_path / "set.mp4.json", "live")
    # time is the frame's slot on the video's grid, latency the refresh's own: within half a slot
    assert all(r["latency_s"] == pytest.approx(r["time"] - r["capture_time"], abs=0.5 / 30 + 1e-3) for r in rows)


def test_live_show_sidecar(tmp_path, wav):
    """A whole show (app, rig, atlas fields): every row the live path writes is in the schema."""
    from aadiff_live.config import load_config
    from aadiff_live.live.app import run_live

    cfg = load_config(None, {"model": {"model": "tiny", "size": "64"}, "live": {"input": str(wav)},
                             "tokens": {"tokens": ["fire"]}, "atlas": {"levels": 9}})
    assert run_live(cfg, prompt="a fire", no_display=True, record=str(tmp_path / "show.mp4")) == 0
    rows = check(tmp_path / "show.mp4.json", "live")
    assert any(not r["exact"] for r in rows)


def test_routed_sidecars_validate(tmp_path, cli):
    """Routes: render (a grid: each word's weight, each source's value, the grid position) and live (the cells
    blended and their shares) write the same schema."""
    from aadiff_live.config import RouteConfig, load_config
    from aadiff_live.live.app import run_live

    t = np.arange(3 * SR) / SR
    x = (0.3 * np.sin(2 * np.pi * 80 * t) * (t % 1.0 < 0.5) + 0.05 * np.random.default_rng(0).standard_normal(t.size)
         * (t % 0.5 < 0.1)).astype(np.float32)
    wav = tmp_path / "r.wav"
    sf.write(str(wav), x, SR)
    prompt = "thunder and rain over a dark sea"
    code, _, err = cli("render", "--audio", wav, "--out", tmp_path / "r.mp4", "--model", "tiny", "--size", "64",
                       "--prompt", prompt, "--route", "low=thunder", "--route", "high=rain", "--levels-2", "3")
    assert code == 0, err
    rows = check(tmp_path / "r.mp4.json", "render")
    assert set(rows[0]["weights"]) == {"thunder", "rain"} and len(rows[0]["grid_position"]) == 2
    cfg = load_config(None, {"model": {"model": "tiny", "size": "64"}, "live": {"input": str(wav)},
                             "atlas": {"levels_2": 2}})
    cfg.routes = [RouteConfig(source="low", word="thunder"), RouteConfig(source="high", word="rain")]
    assert run_live(cfg, prompt=prompt, no_display=True, record=str(tmp_path / "l.mp4")) == 0
    rows = check(tmp_path / "l.mp4.json", "live")
    assert set(rows[-1]["weights"]) == {"thunder", "rain"} and any("cells" in r for r in rows)
