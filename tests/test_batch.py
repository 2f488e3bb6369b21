"""``aadiff-live batch`` in one process: the manifest checked whole, done rows skipped, a failing row retried and
reported, each model loaded once, outputs identical to ``render``'s, Ctrl-C discards and a rerun resumes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import BATCH_ROWS, batch_case, render_args, video_frames  # noqa: E402

from aadiff_live.output.sidecar import read_rows  # noqa: E402


def _report(out_dir: Path) -> dict[int, dict]:
    lines = (out_dir / "batch_report.jsonl").read_text().splitlines()
    return {r["row"]: r for r in map(json.loads, lines)}


def assert_same_as_render(cli, folder: Path, out_dir: Path, numbers: list[int]) -> None:
    """The batch's video of each row decodes to the frames ``render`` makes for the same row, and the sidecars
    hold the same settings and per-frame rows."""
    ref_dir = folder / "ref"
    ref_dir.mkdir(exist_ok=True)
    report = _report(out_dir)
    for n in numbers:
        ref = ref_dir / f"row{n}.mp4"
        code, _, err = cli(*render_args(BATCH_ROWS[n - 1], folder, ref))
        assert code == 0, err
        got = Path(report[n]["out"])
        a, b = video_frames(got), video_frames(ref)
        # the same frames in (the rows below and render's own PNGs are bit-identical run to run), but x264 does not
        # always encode them to the same bits within one process (two encodings of one row's frames seen, mean
        # 0.3-0.6/255 apart after decoding), so the decoded videos agree to within encoding noise: far below what
        # another seed, word or weight makes (tens of 1/255)
        assert a.shape == b.shape, f"row {n}: {a.shape} frames, render made {b.shape}"
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        assert diff.mean() <= 1.0 and np.percentile(diff, 99) <= 8, f"row {n}: frames differ from render's"
        side = {p: json.loads(Path(str(p) + ".json").read_text()) for p in (got, ref)}
        assert side[got]["settings"] == side[ref]["settings"], f"row {n}: settings differ"
        assert side[got]["tokens"] == side[ref]["tokens"]
        assert read_rows(str(got) + ".json") == read_rows(str(ref) + ".json")


@pytest.fixture
def case(tmp_path, cli):
    """The 6-row manifest, and row 6 already rendered by ``render`` into the output folder."""
    manifest = batch_case(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = cli(*render_args(BATCH_ROWS[5], tmp_path, out_dir / "done.mp4"))
    assert code == 0, err
    return manifest, out_dir


def test_batch_renders_skips_retries_and_reports(case, cli, tmp_path, monkeypatch):
    import aadiff_live.rendering.build as build

    manifest, out_dir = case
    done_mtime = (out_dir / "done.mp4").stat().st_mtime_ns
    loads = []
    real = build.load_model
    monkeypatch.setattr(build, "load_model", lambda cfg: loads.append(cfg.model.model) or real(cfg))
    code, _, err = cli("batch", manifest, "--out-dir", out_dir)
    assert code == 1, err  # a row failed
    report = _report(out_dir)
    status = {n: r["status"] for n, r in report.items()}
    assert status == {1: "rendered", 2: "rendered", 3: "failed", 4: "rendered", 5: "rendered", 6: "skipped"}
    assert report[3]["attempts"] == 2 and "bad.wav" in report[3]["error"] and "cannot decode" in report[3]["error"]
    assert "row 3 failed" in err
    assert loads == ["tiny"]  # four rendered rows, one model load
    assert (out_dir / "done.mp4").stat().st_mtime_ns == done_mtime  # skipped: not written again
    assert (out_dir / "sub" / "smoke.mp4").is_file()  # the out column, relative to --out-dir
    assert not list(out_dir.rglob("*.partial*")) and not list(out_dir.glob("bad_*"))  # nothing left of row 3
    assert_same_as_render(cli, tmp_path, out_dir, [1, 2, 4, 5])  # 4: an --image base

    # a second run: the done rows are skipped, the failing one is tried again; --force renders everything
    code, _, err = cli("batch", manifest, "--out-dir", out_dir)
    assert code == 1 and [r["status"] for r in _report(out_dir).values()].count("skipped") == 5, err


def test_a_changed_setting_renders_the_row_again(case, cli, tmp_path):
    manifest, out_dir = case
    text = manifest.read_text().splitlines()
    manifest.write_text("\n".join([text[0], text[6]]) + "\n")  # row 6 alone, done
    code, _, err = cli("batch", manifest, "--out-dir", out_dir)
    assert code == 0 and _report(out_dir)[1]["status"] == "skipped", err
    side = out_dir / "done.mp4.json"
    doc = json.loads(side.read_text())
    doc["settings"]["request"]["config"]["model"]["seed"] = 99  # as if rendered with another seed
    side.write_text(json.dumps(doc))
    code, _, err = cli("batch", manifest, "--out-dir", out_dir)
    assert code == 0 and _report(out_dir)[1]["status"] == "rendered", err
    code, _, err = cli("batch", manifest, "--out-dir", out_dir, "--force")
    assert code == 0 and _report(out_dir)[1]["status"] == "rendered", err


def test_bad_manifest_lists_every_bad_row_and_starts_nothing(tmp_path, cli, monkeypatch):
    import aadiff_live.rendering.build as build

    batch_case(tmp_path)
    (tmp_path / "bad.csv").write_text(
        "audio,prompt,seed,size,tokens,levels,out\n"
        "a0.wav,fire over water,1,64,fire,3,x.mp4\n"  # fine
        "a0.wav,fire over water,seven,64,,3,\n"  # seed not a number
        "nowhere.wav,fire over water,1,65,,3,\n"  # no such file, size not a multiple of 64
        "a1.wav,fire over water,1,64,smoke,3,\n"  # a pinned word not in the prompt
        "a1.wav,,1,64,,1,\n"  # no prompt, one level
        "a2.wav,smoke,2,64,,3,x.mp4\n")  # the same out as row 1

    def no_model(cfg):
        raise AssertionError("a model loaded before the manifest was checked")

    monkeypatch.setattr(build, "load_model", no_model)
    out_dir = tmp_path / "out"
    code, _, err = cli("batch", tmp_path / "bad.csv", "--out-dir", out_dir)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert "6 problem(s)" in lines[0] or "problem(s)" in lines[0], err
    listed = "\n".join(lines[1:])
    for needle in ("row 2, column seed: argument --seed: invalid int value: 'seven'",
                   "row 3, column size:", "row 3, column audio:", "nowhere.wav not found",
                   "row 4, column tokens:", "'smoke' is not a word of the prompt",
                   "row 5, column prompt: empty", "row 5, column levels:", "row 6: writes x.mp4 as row 1 does"):
        assert needle in listed, (needle, err)
    assert not any(line.strip().startswith("row 1,") for line in lines) and "Traceback" not in err
    assert not list(out_dir.iterdir())  # no report, no video


def test_bad_header_and_missing_columns(tmp_path, cli):
    batch_case(tmp_path)
    (tmp_path / "h.csv").write_text("audio,colour\na0.wav,red\n")
    code, _, err = cli("batch", tmp_path / "h.csv", "--out-dir", tmp_path / "o")
    assert code == 2 and "column colour: not a render option" in err and "no prompt column" in err, err


def test_ctrl_c_discards_the_row_in_progress_and_a_rerun_resumes(case, cli, tmp_path, monkeypatch):
    from aadiff_live.output import video

    manifest, out_dir = case
    real = video.VideoWriter.write
    written = []

    def interrupting(self, image, *a, **k):
        written.append(self.path.name)
        if len(written) == 6:  # the second frame of the second rendered row
            raise KeyboardInterrupt
        return real(self, image, *a, **k)

    monkeypatch.setattr(video.VideoWriter, "write", interrupting)
    code, _, err = cli("batch", manifest, "--out-dir", out_dir)
    assert code == 130 and "Run the same command again to resume" in err, err
    report = _report(out_dir)
    assert [r["status"] for r in report.values()].count("rendered") == 1
    interrupted = out_dir / written[-1]
    assert not interrupted.exists() and not Path(str(interrupted) + ".json").exists()
    assert not list(out_dir.rglob("*.partial*")) and not list(out_dir.rglob(f"{interrupted.name}.frames.jsonl"))
    monkeypatch.setattr(video.VideoWriter, "write", real)
    code, _, err = cli("batch", manifest, "--out-dir", out_dir)
    assert code == 1, err
    status = [r["status"] for r in _report(out_dir).values()]
    assert status.count("skipped") == 2 and status.count("rendered") == 3 and status.count("failed") == 1


def test_ray_flags_without_ray_are_one_line_errors(tmp_path, cli, monkeypatch):
    manifest = batch_case(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    code, _, err = cli("batch", manifest, "--out-dir", tmp_path / "o", "--ray", "auto")
    assert code == 2 and err.count("\n") == 1 and 'pip install "aadiff-live[ray]"' in err, err
    code, _, err = cli("batch", manifest, "--out-dir", tmp_path / "o", "--workers", "2")
    assert code == 2 and "--ray" in err, err


def test_a_row_that_fails_once_is_retried_with_the_model_loaded_afresh(tmp_path, cli, monkeypatch):
    import aadiff_live.render as render
    import aadiff_live.rendering.build as build

    manifest = batch_case(tmp_path)
    manifest.write_text("\n".join(manifest.read_text().splitlines()[:3]) + "\n")  # rows 1 and 2
    loads, calls = [], []
    real_load, real_analyse = build.load_model, render.analyse_clip
    monkeypatch.setattr(build, "load_model", lambda cfg: loads.append(1) or real_load(cfg))

    def out_of_memory_once(*a, **k):
        calls.append(1)
        if len(calls) == 2:  # row 2's first attempt, after row 1 loaded the model
            raise MemoryError("out of memory")
        return real_analyse(*a, **k)

    monkeypatch.setattr(render, "analyse_clip", out_of_memory_once)
    code, _, err = cli("batch", manifest, "--out-dir", tmp_path / "out")
    assert code == 0, err
    report = _report(tmp_path / "out")
    assert report[1]["attempts"] == 1 and report[2]["attempts"] == 2 and report[2]["status"] == "rendered"
    assert "row 2 failed (attempt 1 of 2): MemoryError: out of memory" in err
    assert len(loads) == 2  # the failure dropped the model: loaded again for the retry
