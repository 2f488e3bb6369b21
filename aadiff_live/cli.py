"""Command line: ``aadiff-live [live] ...``, ``render``, ``analyse``, ``devices``, ``build-engine``.

Every user mistake ends with one line ``aadiff-live: error: ...`` and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from aadiff_live.config import MAX_ROUTES, TEMPO_SOURCES, Config, default_text, field_of
from aadiff_live.errors import UserError

log = logging.getLogger("aadiff_live")
COMMANDS = ("live", "render", "batch", "analyse", "analyze", "devices", "midi-ports", "build-engine", "download",
            "evaluate")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        raise UserError(f"{message} (see `{self.prog} --help`)")


# dest -> (section, key): the options that set a Config field. Their help is the field's description and
# default (Config is the one home of both), and _overrides() hands their values to load_config.
BOUND: dict[str, tuple[str, str]] = {}


def config_help(section: str, key: str) -> str:
    """The help of an option bound to ``section.key``: the field's description and its default."""
    return f"{field_of(section, key).description} (default: {default_text(section, key)}; config: {section}.{key})"


def _cfg(g, flag: str, path: str, **kw) -> None:
    """Add ``flag`` bound to the Config field ``path`` ("section.key"); absent, it leaves the config's value."""
    section, key = path.split(".")
    action = g.add_argument(flag, default=None, help=config_help(section, key), **kw)
    BOUND[action.dest] = (section, key)


def _image_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", help="animate this picture: it is the base (VAE-encoded, noised to --strength; with "
                   "--invert, inverted so the quiet frame is the picture itself)")
    _cfg(p, "--strength", "model.strength", type=float)
    _cfg(p, "--invert", "model.invert", action="store_true")


def _words_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("words")
    g.add_argument("--prompt", help="what the scene is, e.g. \"a city skyline in a thunderstorm\"")
    _cfg(g, "--tokens", "tokens.tokens", metavar="WORD[,WORD]")
    _cfg(g, "--top-k", "tokens.top_k", type=int)
    _cfg(g, "--clap-model", "tokens.clap_model")


def _route_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--route", action="append", metavar="SOURCE=WORD[:W_MIN:W_MAX]",
                   help=f"give one word of the prompt its own weight from one sound source, repeatable (at most "
                   f"{MAX_ROUTES}): sources loudness, low, mid, high (features.bands), onset, onset:BAND, and offline "
                   "drums, bass, vocals, other, and the beat-locked beat, bar, lfo:SHAPE:BEATS (SHAPE sine, saw, "
                   "square, triangle; BEATS its period; --tempo); e.g. --route low=thunder --route high=rain. --route auto: CLAP gives "
                   "each source the word that sounds like it (config: routes; given, it replaces the config's)")


def _envelope_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("envelope (docs: shaping the response)")
    _cfg(g, "--fps", "envelope.fps", type=float)
    _cfg(g, "--window", "envelope.window", type=int)
    _cfg(g, "--smoothing", "envelope.mode", choices=["centred", "trailing", "attack-release"])
    _cfg(g, "--attack-ms", "envelope.attack_ms", type=float)
    _cfg(g, "--release-ms", "envelope.release_ms", type=float)
    _cfg(g, "--w-min", "envelope.w_min", type=float)
    _cfg(g, "--w-max", "envelope.w_max", type=float)
    _cfg(g, "--gain", "envelope.gain", type=float)


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    _cfg(g, "--model", "model.model")
    _cfg(g, "--steps", "model.steps", type=int)
    _cfg(g, "--guidance", "model.guidance", type=float)
    _cfg(g, "--seed", "model.seed", type=int)
    _cfg(g, "--size", "model.size")
    _cfg(g, "--device", "model.device")
    _cfg(g, "--dtype", "model.dtype", choices=["auto", "float32", "float16", "bfloat16"])
    _cfg(g, "--backend", "model.backend", choices=["auto", "torch", "onnxruntime", "tensorrt"])
    _cfg(g, "--lora", "model.loras", action="append", metavar="ID_OR_PATH[:SCALE]")
    _cfg(g, "--vae", "model.vae")
    _cfg(g, "--compile", "model.compile", action=argparse.BooleanOptionalAction)
    _words_args(p)
    _envelope_args(p)
    g = p.add_argument_group("frame atlas")
    _cfg(g, "--levels", "atlas.levels", type=int)
    _cfg(g, "--levels-2", "atlas.levels_2", type=int)
    _cfg(g, "--levels-3", "atlas.levels_3", type=int)
    _cfg(g, "--atlas-mb", "atlas.mb", type=float)
    _cfg(g, "--atlas-batch", "atlas.batch", type=int)
    p.add_argument("--config", help="YAML config (default ./config.yaml if present); CLI flags override it")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _render_args(r: argparse.ArgumentParser) -> None:
    """``render``'s options (a batch manifest's columns are the same options)."""
    _model_args(r)
    _route_args(r)
    _cfg(r, "--tempo", "tempo.source", choices=TEMPO_SOURCES)
    r.add_argument("--audio", help="sound file: wav, flac, ogg, mp3 (any rate, mono or stereo)")
    r.add_argument("--demo", action="store_true", help="no download: --model tiny, a synthetic storm and a "
                   "picture (a sun over the sea) made in code, and a default prompt")
    r.add_argument("--out", help="output video (.mp4); a JSON sidecar is written next to it")
    _image_args(r)
    r.add_argument("--frames", help="also write every frame as PNG into this folder")
    r.add_argument("--plot", action="store_true", help="also write OUT.mp4.png: the envelope and weight over time")
    r.add_argument("--exact", action="store_true", help="render every distinct weight (same as --levels 0) "
                   "instead of blending atlas levels")


def render_parser() -> argparse.ArgumentParser:
    """A parser of ``render``'s options alone: batch parses each manifest row with it."""
    p = _Parser(prog="aadiff-live render")
    _render_args(p)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aadiff-live", description="Sound drives a diffusion picture (AADiff). Without a "
                     "command, runs live: aadiff-live --input default --prompt \"wildfire\"")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    def command(name: str, text: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".", **kw)

    _render_args(command("render", "render a video from a sound file and a prompt"))

    bt = command("batch", "render every row of a CSV manifest (audio, prompt, any render option as a column) "
                 "in one process that loads each model once, or on a Ray cluster (--ray)")
    bt.add_argument("manifest", help="CSV with a header: audio and prompt columns, optional out and config columns, "
                    "and any render option as a column named like its flag (seed, tokens, route, image, size, "
                    "window, ...); paths are relative to the manifest's folder")
    bt.add_argument("--out-dir", required=True, help="the videos, their sidecars and batch_report.jsonl go here "
                    "(an out column is relative to it)")
    bt.add_argument("--force", action="store_true", help="render rows whose video and sidecar already exist with "
                    "the same settings again (default: skip them)")
    bt.add_argument("--ray", metavar="auto|ADDRESS", help="spread the rows over a Ray cluster: auto (the one "
                    "this machine belongs to, or a local one) or its address, e.g. ray://head:10001; "
                    "pip install \"aadiff-live[ray]\"")
    bt.add_argument("--workers", type=int, help="with --ray: renderers, each holding a loaded model (default: one "
                    "per GPU of the cluster, or 2 on CPUs)")
    bt.add_argument("--config", help="YAML config of every row without a config column (default ./config.yaml if "
                    "present)")
    bt.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    an = command("analyse", "the envelope, weights and CLAP ranking of a sound file and their statistics, "
                 "without rendering (tune --window/--gain before a long render)", aliases=["analyze"])
    an.add_argument("clip", nargs="?", help="sound file: wav, flac, ogg, mp3, ... (read in blocks: hours are fine)")
    an.add_argument("--demo", action="store_true", help="the demo's synthetic storm instead of a file")
    _words_args(an)
    _envelope_args(an)
    an.add_argument("--json", metavar="OUT", help="write the statistics, the ranking, every frame's values and every "
                    "source's (loudness, bands, onsets with their event times) here")
    an.add_argument("--plot", nargs="?", const=True, default=False, metavar="PNG",
                    help="plot every source (one panel each, onsets marked) and the weight (default file: OUT.json.png "
                    "with --json, else CLIP.envelope.png)")
    _cfg(an, "--tempo", "tempo.source", choices=TEMPO_SOURCES)
    an.add_argument("--stems", action="store_true", help="also the stem sources drums, bass, vocals, other (Demucs, "
                    "features.stem_model; pip install \"aadiff-live[stems]\")")
    an.add_argument("--config", help="YAML config (default ./config.yaml if present); CLI flags override it")
    an.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    ev = command("evaluate", "how closely a rendered or recorded video follows its sound: per frame the CLIP "
                 "similarity to the weighted word and the prompt against the weight and the envelope (the paper's "
                 "Fig. 4), frame change, and the picture's lag behind each onset")
    ev.add_argument("video", nargs="?", help="a video from `render --out` or `--record`, with its sidecar beside it")
    _cfg(ev, "--clip-model", "evaluate.clip_model")
    ev.add_argument("--json", metavar="OUT", help="also write the report and every frame's values here")
    ev.add_argument("--plot", metavar="PNG", help="also draw the report here (like the paper's Fig. 4)")
    _cfg(ev, "--device", "model.device")
    ev.add_argument("--config", help="YAML config (default ./config.yaml if present); CLI flags override it")
    ev.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    live = command("live", "react to live input (the default command)")
    _model_args(live)
    _route_args(live)
    _cfg(live, "--input", "live.input")
    _image_args(live)
    live.add_argument("--monitor", action="store_true", help="with a file --input: also play it to the speakers")
    _cfg(live, "--loop", "live.loop", action="store_true")
    live.add_argument("--no-display", action="store_true", help="headless (installations, tests)")
    _cfg(live, "--fullscreen", "live.fullscreen", action="store_true")
    _cfg(live, "--display", "live.display", type=int)
    live.add_argument("--duration", type=float, help="stop after this many seconds")
    _cfg(live, "--display-fps", "live.display_fps", type=float)
    live.add_argument("--record", help="record the frames as shown, with the captured audio, to this .mp4")
    _cfg(live, "--stall-s", "live.stall_s", type=float)
    _cfg(live, "--wait-for-device", "live.wait_for_device_s", type=float, metavar="SECONDS")
    _cfg(live, "--segment-minutes", "live.segment_minutes", type=float)
    tg = live.add_argument_group("tempo and beat (docs: tempo and beat)")
    _cfg(tg, "--tempo", "tempo.source", choices=TEMPO_SOURCES)
    _cfg(tg, "--quantise", "tempo.quantise", choices=["off", "beat", "bar"])
    _cfg(tg, "--lookahead-ms", "tempo.lookahead_ms", type=float)
    rig = live.add_argument_group("VJ rig (docs: OSC, MIDI, video out); nothing listens unless asked")
    _cfg(rig, "--osc-port", "osc.port", type=int)
    _cfg(rig, "--osc-host", "osc.host")
    _cfg(rig, "--osc-send", "osc.send", metavar="HOST:PORT")
    _cfg(rig, "--midi", "midi.port", metavar="NAME")
    _cfg(rig, "--output", "video_out.targets", action="append", metavar="KIND[:NAME]")
    _cfg(rig, "--output-hud", "video_out.hud", action="store_true")
    webg = live.add_argument_group("status page (docs: installation); off unless asked")
    _cfg(webg, "--web", "web.listen", metavar="[HOST:]PORT")
    _cfg(webg, "--web-token", "web.token", metavar="TOKEN")

    command("devices", "list audio input devices")
    command("midi-ports", "list MIDI input ports (for --midi)")

    b = command("build-engine", "build (or check) the compiled engine in engines/")
    _model_args(b)
    b.add_argument("--engines", help="engine folder (default ./engines)")
    b.add_argument("--force", action="store_true", help="rebuild even if a matching engine exists")

    d = command("download", "fetch everything a gig needs (model, CLAP, tiny VAE) so the show runs offline")
    d.add_argument("fetch_model", metavar="MODEL", nargs="?", help=f"hub id (default: the config's model.model, {default_text('model', 'model')})")
    d.add_argument("--clap", help=f"CLAP checkpoint (default: the config's tokens.clap_model, "
                   f"{default_text('tokens', 'clap_model')})")
    d.add_argument("--no-clap", action="store_true", help="skip CLAP (every show pins its words with --tokens)")
    d.add_argument("--clip-model", dest="fetch_clip", metavar="ID", help="also this CLIP model, for `evaluate` "
                   f"(its default: {default_text('evaluate', 'clip_model')})")
    d.add_argument("--vae", dest="fetch_vae", help="tiny: also TAESD (TAESDXL for SDXL); or a VAE hub id")
    d.add_argument("--variant", choices=["auto", "fp16", "plain"], default="auto",
                   help="weights: fp16 (half the download, for GPUs) where the repo has them, plain (fp32), or auto "
                        "(fp16 when this machine has CUDA)")
    d.add_argument("--config", help="YAML config whose model and CLAP to fetch")
    d.add_argument("-v", "--verbose", action="store_true")
    return parser


def _overrides(a: argparse.Namespace) -> dict[str, dict]:
    """{section: {key: value}} of the bound options given on the command line (None: not given)."""
    out: dict[str, dict] = {}
    for dest, (section, key) in BOUND.items():
        out.setdefault(section, {})[key] = getattr(a, dest, None)
    return out


def _setup_logging(verbose: bool, models: bool = True) -> None:
    """Log lines on stderr; ``models=False`` (analysing without CLAP) does not import diffusers and
    transformers just to quieten them (they would cost ~300 MB of memory)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="aadiff-live: %(message)s",
                        stream=sys.stderr, force=True)
    for noisy in ("httpx", "urllib3", "huggingface_hub", "diffusers", "transformers", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.ERROR if not verbose else logging.INFO)
    if not verbose and models:
        from diffusers.utils import logging as dlog
        from transformers.utils import logging as tlog

        dlog.set_verbosity_error()
        tlog.set_verbosity_error()
        dlog.disable_progress_bar()


def _download(a: argparse.Namespace, cfg) -> int:
    import torch

    from aadiff_live.models.download import download

    fp16 = a.variant == "fp16" or (a.variant == "auto" and torch.cuda.is_available())
    model = a.fetch_model or cfg.model.model
    clap = None if a.no_clap else (a.clap or cfg.tokens.clap_model)
    got = download(model, clap=clap, vae=a.fetch_vae or "auto", fp16=fp16, clip=a.fetch_clip)
    for repo, path in got.items():
        log.info("%s -> %s", repo, path)
    log.info("ready offline: `aadiff-live --model %s%s ...` loads from the cache (HF_HUB_OFFLINE=1 to be sure)", model,
             " --vae tiny" if a.fetch_vae == "tiny" else "")
    return 0


def config_path(a: argparse.Namespace) -> Path | None:
    """``--config``, else ./config.yaml if there is one."""
    return Path(a.config) if a.config else (Path("config.yaml") if Path("config.yaml").is_file() else None)


def config_from_args(a: argparse.Namespace, default_config: Path | None = None) -> Config:
    """The Config of parsed arguments: the YAML (``--config``, else ``default_config``, else ./config.yaml),
    then the flags given. render, live, analyse, download and every batch row go through here."""
    from aadiff_live.config import load_config

    cfg_path = Path(a.config) if a.config else (default_config or config_path(a))
    overrides = _overrides(a)
    demo_pin = False
    if a.command == "render" and a.demo:
        overrides["model"]["model"] = overrides["model"]["model"] or "tiny"
        overrides["model"]["size"] = overrides["model"]["size"] or "128"
        if not a.prompt:
            a.prompt = "a thunderstorm at sea"
            # the tiny CLAP has random weights too: pin the word that matches the demo sound (unless routes,
            # given here or in config.yaml, choose the words: e.g. --route low=thunderstorm --route high=sea)
            if not a.tokens and not getattr(a, "route", None):
                a.tokens, demo_pin = "thunderstorm", True
            overrides["tokens"]["tokens"] = a.tokens
    if a.command in ("render", "live", "analyse") and overrides["tokens"]["tokens"] is not None:
        overrides["tokens"]["tokens"] = [t for t in overrides["tokens"]["tokens"].split(",")]
    cfg = load_config(cfg_path, overrides)
    if getattr(a, "route", None):
        from aadiff_live.config import parse_route

        parsed = [parse_route(t) for t in a.route]
        named = [r for r in parsed if r != "auto"]
        if len(named) < len(parsed) and len(parsed) > 1:
            raise UserError("--route auto chooses every route itself; give it alone, or name the routes")
        cfg.routes = named if named else "auto"  # --route flags replace config.yaml's routes
    if demo_pin and cfg.routes:
        cfg.tokens.tokens = None  # config.yaml's routes choose the demo's words
    return cfg


def render_job_from_args(a: argparse.Namespace, cfg: Config):
    """``render``'s arguments checked into a RenderJob (no model loaded yet): render and every batch row."""
    if not a.out:
        raise UserError("render needs --out video.mp4")
    from aadiff_live.render import check_render

    return check_render(cfg, audio_path=a.audio, prompt=a.prompt or "", out=a.out, frames_dir=a.frames,
                        plot=a.plot, image=a.image, demo=a.demo, exact=a.exact)


def _dispatch(argv: list[str]) -> int:
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["live", *argv]
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.command == "devices":
        _setup_logging(False)
        from aadiff_live.live.devices import print_devices

        return print_devices()
    if a.command == "midi-ports":
        _setup_logging(False)
        from aadiff_live.control.midi import print_ports

        return print_ports()
    if a.command == "analyze":
        a.command = "analyse"
    if a.command == "batch":
        _setup_logging(a.verbose)
        from aadiff_live.batch.command import run_batch
        from aadiff_live.batch.manifest import RenderOptions

        return run_batch(a, RenderOptions(render_parser, config_from_args, render_job_from_args))
    _setup_logging(a.verbose, models=not (a.command == "analyse" and (not a.prompt or a.tokens)))
    cfg = config_from_args(a)
    if a.command == "download":
        return _download(a, cfg)
    if a.command == "render":
        from aadiff_live.render import run_job

        return run_job(render_job_from_args(a, cfg))
    if a.command == "analyse":
        if isinstance(a.plot, str) and Path(a.plot).suffix.lower() != ".png":  # e.g. `analyse --plot clip.wav`
            raise UserError(f"--plot {a.plot}: the plot is a PNG file, name it .png (or give no name: "
                            f"aadiff-live analyse clip.wav --plot)")
        if not a.clip and not a.demo:
            raise UserError("analyse needs a sound file: aadiff-live analyse clip.wav (or --demo)")
        if a.clip and a.demo:
            raise UserError("analyse takes either a sound file or --demo, not both")
        from aadiff_live.analyse import run_analyse

        return run_analyse(cfg, audio_path=a.clip, prompt=a.prompt, json_out=a.json, plot=a.plot, demo=a.demo,
                           stems=a.stems)
    if a.command == "evaluate":
        if not a.video:
            raise UserError("evaluate needs a video: aadiff-live evaluate clip.mp4 (from render --out or --record)")
        from aadiff_live.evaluate import run_evaluate

        return run_evaluate(cfg, a.video, json_out=a.json, plot=a.plot)
    if a.command == "live":
        from aadiff_live.live.app import run_live

        if a.segment_minutes is not None and not a.record:
            raise UserError("--segment-minutes needs --record OUT.mp4 (it splits the recording into files)")

        return run_live(cfg, prompt=a.prompt or "", no_display=a.no_display, duration=a.duration,
                        record=a.record, monitor=a.monitor, config_path=config_path(a), image=a.image)
    if a.command == "build-engine":
        from aadiff_live.build_engine import build_engine_command

        return build_engine_command(cfg, engines_dir=a.engines, force=a.force)
    parser.print_help()
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(argv)
    except UserError as exc:
        print(f"aadiff-live: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("aadiff-live: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("aadiff-live: error: out of memory; try a smaller --size or --dtype float16 on a GPU", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
