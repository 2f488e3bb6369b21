"""Every failure to write an output is one line naming the file and the cause, never a traceback.

Exit code 2 for a path the user gave that cannot be written from the start, 1 for a write that fails
part-way (the disk fills, the folder vanishes), with no partial file left behind. Each is tested with
a fault injected at the writer (always runs) and, where the machine lets this process mount one, with
a really full filesystem (a small tmpfs).
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

TINY = ["--model", "tiny", "--size", "64", "--tokens", "fire"]


@pytest.fixture()
def wav(tmp_path):
    sr = 16000
    x = (np.random.default_rng(0).standard_normal(2 * sr) * 0.2).astype(np.float32)
    path = tmp_path / "in" / "in.wav"
    path.parent.mkdir()
    sf.write(path, x, sr)
    return path


def _one_line(code, err, expected_code, *needles):
    assert code == expected_code, err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("aadiff-live: error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert str(n) in lines[0], lines[0]
    return lines[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class _FullAfter:
    """Makes the video writer's encoder fail with ENOSPC after ``n`` calls (a fault injected at the writer)."""

    def __init__(self, monkeypatch, n: int) -> None:
        from aadiff_live.output import video

        real = video.VideoWriter._encode_video
        self.calls = 0

        def encode(writer, frame):
            self.calls += 1
            if self.calls > n:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(writer, frame)

        monkeypatch.setattr(video.VideoWriter, "_encode_video", encode)


def test_render_disk_full_mid_render_is_one_line_exit_1_and_no_partial_file(cli, tmp_path, wav, monkeypatch):
    _FullAfter(monkeypatch, 5)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = cli("render", "--audio", wav, "--prompt", "fire", "--out", out_dir / "o.mp4", *TINY)
    _one_line(code, err, 1, out_dir / "o.mp4", "No space left on device", "partial file was removed")
    assert _leftovers(out_dir) == []


def test_render_folder_vanishing_mid_render_is_one_line_exit_1(cli, tmp_path, wav, monkeypatch):
    from aadiff_live.output import video

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    real = video.VideoWriter._encode_video
    calls = {"n": 0}

    def encode(writer, frame):
        calls["n"] += 1
        if calls["n"] == 3:
            shutil.rmtree(out_dir)  # a USB stick pulled, a folder deleted by another program
        return real(writer, frame)

    monkeypatch.setattr(video.VideoWriter, "_encode_video", encode)
    code, _, err = cli("render", "--audio", wav, "--prompt", "fire", "--out", out_dir / "o.mp4", *TINY)
    _one_line(code, err, 1, out_dir / "o.mp4", "No such file or directory")
    assert not out_dir.exists()


def test_render_frames_folder_full_is_one_line_exit_1(cli, tmp_path, wav, monkeypatch):
    from PIL import Image

    real = Image.Image.save
    calls = {"n": 0}

    def save(img, fp, *a, **k):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(img, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = cli("render", "--audio", wav, "--prompt", "fire", "--out", out_dir / "o.mp4",
                       "--frames", out_dir / "frames", *TINY)
    _one_line(code, err, 1, out_dir / "frames" / "frame_00003.png", "No space left on device")
    assert _leftovers(out_dir) == ["frames"]  # the video's partial file is gone


def test_sidecar_write_failure_is_one_line_exit_1(cli, tmp_path, wav, monkeypatch):
    from aadiff_live.output import sidecar

    def dump(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sidecar.json, "dump", dump)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = cli("render", "--audio", wav, "--prompt", "fire", "--out", out_dir / "o.mp4", *TINY)
    _one_line(code, err, 1, out_dir / "o.mp4.json", "No space left on device")
    assert _leftovers(out_dir) == ["o.mp4", "o.mp4.frames.jsonl"]  # the finished video and rows stay


@pytest.mark.parametrize("target", ["json", "plot"])
def test_analyse_output_failure_is_one_line_exit_1(cli, tmp_path, wav, monkeypatch, target):
    import matplotlib.figure

    from aadiff_live.output import sidecar

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sidecar.json, "dump", full) if target == "json" else \
        monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = cli("analyse", wav, "--json", out_dir / "a.json", "--plot")
    name = "a.json" if target == "json" else "a.json.png"
    _one_line(code, err, 1, out_dir / name, "No space left on device")
    assert name not in _leftovers(out_dir) and not [n for n in _leftovers(out_dir) if "partial" in n]


@pytest.mark.parametrize("command,flag", [("render", "--out"), ("analyse", "--json"), ("live", "--record")])
def test_a_folder_that_only_looks_writable_is_exit_2_naming_the_flag(cli, tmp_path, wav, monkeypatch, command, flag):
    # /proc looks writable to root but takes no new files; a read-only mount does the same to anyone
    target = Path("/proc") / "aadiff-x.mp4"
    args = {"render": ["render", "--audio", wav, "--prompt", "fire", "--out", target, *TINY],
            "analyse": ["analyse", wav, "--json", target],
            "live": ["live", "--input", wav, "--prompt", "fire", "--no-display", "--duration", "1",
                     "--record", target, *TINY]}[command]
    code, _, err = cli(*args)
    line = _one_line(code, err, 2, target, flag)
    assert "choose another" in line or "not writable" in line


def test_live_recording_disk_full_names_the_file_and_the_cause(tmp_path, monkeypatch):
    from test_live_recorder import T0, Clock, frame, make_ring, wait_for

    from aadiff_live.live.recorder import Recorder

    _FullAfter(monkeypatch, 4)
    ring, _ = make_ring(2.0)
    stop = threading.Event()
    rec = Recorder(tmp_path / "set.mp4", ring, 30.0, 64, 64, stop, clock=Clock(T0 + 2.0))
    rec.start()
    try:
        for i in range(30):
            rec.add(frame(i), T0 + i / 30 + 0.05)
        assert wait_for(lambda: rec.alert is not None)
    finally:
        stop.set()
        rec.join(timeout=5)
    rec.finish({})
    assert rec.alert == f"RECORDING FAILED: cannot write {tmp_path / 'set.mp4'}: No space left on device; " \
                        "what was flushed before is kept"


# ---------------------------------------------------------------- a really full filesystem


@pytest.fixture()
def tiny_fs(tmp_path):
    """A 300 kB tmpfs, nearly filled (needs root and a kernel that allows the mount; else skipped)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({p.stderr.strip() or p.returncode})")
    try:
        free = shutil.disk_usage(mnt).free
        (mnt / "filler").write_bytes(b"\0" * max(0, free - 16 * 1024))  # leave ~16 kB: a few frames fit
        (mnt / "out").mkdir()
        yield mnt / "out"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_render_on_a_really_full_disk(cli, wav, tiny_fs):
    # 2 s of AAC at 192 kb/s alone is ~48 kB: the disk fills part-way whatever the picture
    code, _, err = cli("render", "--audio", wav, "--prompt", "fire", "--out", tiny_fs / "o.mp4", *TINY, "--levels", "2")
    _one_line(code, err, 1, tiny_fs / "o.mp4", "No space left on device")
    assert _leftovers(tiny_fs) == []


def test_analyse_on_a_really_full_disk(cli, tiny_fs, tmp_path):
    sr = 16000
    long = tmp_path / "long.wav"
    sf.write(long, (np.random.default_rng(1).standard_normal(120 * sr) * 0.2).astype(np.float32), sr)
    code, _, err = cli("analyse", long, "--json", tiny_fs / "a.json", "--fps", "120")
    _one_line(code, err, 1, tiny_fs / "a.", "No space left on device")  # its rows (a.frames.jsonl) fill it first
    assert _leftovers(tiny_fs) == []


def test_flag_names_in_messages(cli, tmp_path, wav):
    out = tmp_path / "o.mp4"
    code, _, err = cli("render", "--audio", wav, "--prompt", "fire", "--out", out, "--atlas-mb", "0", *TINY)
    line = _one_line(code, err, 2, "--atlas-mb")
    assert "--mb" not in line.replace("--atlas-mb", "")
    code, _, err = cli("render", "--audio", wav, "--prompt", "fire", "--out", out, "--levels", "1", *TINY)
    _one_line(code, err, 2, "--levels", "at least 2")
    code, _, err = cli("render", "--audio", wav, "--prompt", "fire", "--out", out, "--smoothing", "centred",
                       "--atlas-batch", "0", *TINY)
    _one_line(code, err, 2, "--atlas-batch")


def test_every_override_names_a_flag_that_exists():
    import argparse

    from aadiff_live.cli import _overrides, build_parser
    from aadiff_live.config import flag_for

    parser = build_parser()
    flags: set[str] = set()
    for action in parser._subparsers._group_actions:  # noqa: SLF001 - argparse has no public walk
        for sub in action.choices.values():
            for a in sub._actions:  # noqa: SLF001
                flags.update(a.option_strings)
    for section, values in _overrides(argparse.Namespace()).items():
        for key in values:
            assert flag_for(section, key) in flags, (section, key)


def test_levels_in_config_file_too(tmp_path):
    from aadiff_live.config import load_config
    from aadiff_live.errors import UserError

    cfg = tmp_path / "c.yaml"
    cfg.write_text("atlas:\n  levels: 1\n")
    with pytest.raises(UserError, match="atlas.levels.*at least 2"):
        load_config(cfg)
    cfg.write_text("atlas:\n  levels: 0\n")
    assert load_config(cfg).atlas.levels == 0


def test_batch_disk_full_records_each_row_in_one_line_and_goes_on(cli, tmp_path, wav, monkeypatch):
    """A full disk fails each row (tried twice) with one line naming the file and the cause; the report says
    the same; no partial file is left; exit 1."""
    import json

    _FullAfter(monkeypatch, 0)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"audio,prompt,tokens,model,size\n{wav},fire,fire,tiny,64\n{wav},rain,rain,tiny,64\n")
    out_dir = tmp_path / "out"
    code, _, err = cli("batch", manifest, "--out-dir", out_dir)
    assert code == 1 and "Traceback" not in err, err
    failed = [ln for ln in err.splitlines() if "failed (attempt" in ln]
    assert len(failed) == 4 and all("No space left on device" in ln and ".mp4" in ln for ln in failed), err
    report = [json.loads(ln) for ln in (out_dir / "batch_report.jsonl").read_text().splitlines()]
    errors = [r["error"] for r in report if r["status"] == "failed"]
    assert len(errors) == 2 and all("No space left on device" in e and "\n" not in e for e in errors), report
    assert [p.name for p in out_dir.iterdir()] == ["batch_report.jsonl"]  # no partial video or sidecar
