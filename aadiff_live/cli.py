"""Command line: ``aadiff-live [live] ...``, ``render``, ``analyse``, ``devices``, ``build-engine``.

Every user mistake ends with one line ``aadiff-live: error: ...`` and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from aadiff_live.errors import UserError

log = logging.getLogger("aadiff_live")
COMMANDS = ("live", "render", "analyse", "analyze", "devices", "midi-ports", "build-engine", "download")
BACKEND_HELP = ("auto|torch|onnxruntime|tensorrt (auto: the fastest available, and says which; tensorrt is "
                "the path with the least test coverage: built on the verified ONNX graph, never run in CI)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        raise UserError(f"{message} (see `{self.prog} --help`)")


def _words_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("words")
    g.add_argument("--prompt", help="what the scene is, e.g. \"a city skyline in a thunderstorm\"")
    g.add_argument("--tokens", help="pin the weighted word(s), comma-separated, instead of CLAP's choice")
    g.add_argument("--top-k", type=int, help="how many words CLAP picks (default 1)")
    g.add_argument("--clap-model", help="CLAP checkpoint (default laion/clap-htsat-unfused)")


def _route_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--route", action="append", metavar="SOURCE=WORD[:W_MIN:W_MAX]",
                   help="give one word of the prompt its own weight from one sound source, repeatable (at most 3): "
                   "sources loudness, low, mid, high (features.bands), onset, onset:BAND, and offline drums, bass, "
                   "vocals, other; e.g. --route low=thunder --route high=rain. --route auto: CLAP gives each source "
                   "the word that sounds like it")


def _envelope_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("envelope")
    g.add_argument("--fps", type=float, help="frames per second of the envelope and video (default 30)")
    g.add_argument("--window", type=int, help="smoothing window in frames: 1 = raw, >= frame count = whole-clip "
                   "mean (default 5)")
    g.add_argument("--smoothing", choices=["centred", "trailing", "attack-release"],
                   help="centred (offline default), trailing or attack-release (causal; live)")
    g.add_argument("--attack-ms", type=float)
    g.add_argument("--release-ms", type=float)
    g.add_argument("--w-min", type=float, help="token weight in silence (default 0: the word fades out)")
    g.add_argument("--w-max", type=float, help="token weight at full loudness (default 2)")
    g.add_argument("--gain", type=float, help="multiplies the normalised envelope (default 1)")


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="hub id, hub-cache id or local folder (default stabilityai/sd-turbo); "
                   "'tiny' = random weights built in-process (noise, for trying the pipeline)")
    g.add_argument("--steps", type=int, help="denoising steps (default by model: turbo 1, LCM 4, others 25)")
    g.add_argument("--guidance", type=float, help="classifier-free guidance (turbo/LCM 0; others 7.5)")
    g.add_argument("--seed", type=int, help="seed of the shared initial noise (default 0)")
    g.add_argument("--size", help="WIDTH or WIDTHxHEIGHT, multiples of 64 (default 512)")
    g.add_argument("--device", help="auto, cpu, cuda, cuda:N, mps")
    g.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"])
    g.add_argument("--backend", help=BACKEND_HELP)
    g.add_argument("--lora", action="append", metavar="ID_OR_PATH[:SCALE]",
                   help="fuse a LoRA (hub id, folder or .safetensors) at SCALE (default 1); repeatable; an LCM-LoRA "
                   "(e.g. latent-consistency/lcm-lora-sdv1-5) makes any SD 1.5 model a 4-step model")
    g.add_argument("--vae", help="auto (the model's KL VAE), tiny (TAESD, madebyollin/taesd) or a hub id/folder")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch on CUDA: torch.compile + CUDA graphs, the first frame compiles for about a minute "
                   "(default: on for CUDA; --no-compile: eager)")
    _words_args(p)
    _envelope_args(p)
    g = p.add_argument_group("frame atlas")
    g.add_argument("--levels", type=int, help="weight levels rendered once and blended (default 33); 0 = render "
                   "every frame exactly")
    g.add_argument("--levels-2", type=int, help="with 2 routed words: levels per axis of the grid (default 9: 9x9)")
    g.add_argument("--levels-3", type=int, help="with 3 routed words: levels per axis of the grid (default 5: 5x5x5)")
    g.add_argument("--atlas-mb", type=float, help="memory cap of the atlases in MB (default 512)")
    g.add_argument("--atlas-batch", type=int, help="levels per UNet call (default: 4 on CPU, 8 on CUDA)")
    p.add_argument("--config", help="YAML config (default ./config.yaml if present); CLI flags override it")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aadiff-live", description="Sound drives a diffusion picture (AADiff). Without a "
                     "command, runs live: aadiff-live --input default --prompt \"wildfire\"")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    r = sub.add_parser("render", help="render a video from a sound file and a prompt")
    _model_args(r)
    _route_args(r)
    r.add_argument("--audio", help="sound file: wav, flac, ogg, mp3 (any rate, mono or stereo)")
    r.add_argument("--demo", action="store_true", help="no download: --model tiny, a synthetic storm and a "
                   "picture (a sun over the sea) made in code, and a default prompt")
    r.add_argument("--out", help="output video (.mp4); a JSON sidecar is written next to it")
    r.add_argument("--image", help="animate this picture: it is the base (VAE-encoded, noised to --strength)")
    r.add_argument("--strength", type=float, help="img2img noise strength for --image (default 0.5)")
    r.add_argument("--frames", help="also write every frame as PNG into this folder")
    r.add_argument("--plot", action="store_true", help="write OUT.png: envelope and weight over time")
    r.add_argument("--exact", action="store_true", help="render every distinct weight (same as --levels 0) "
                   "instead of blending atlas levels")

    an = sub.add_parser("analyse", aliases=["analyze"], help="the envelope, weights and CLAP ranking of a sound "
                        "file and their statistics, without rendering (tune --window/--gain before a long render)")
    an.add_argument("clip", nargs="?", help="sound file: wav, flac, ogg, mp3, ... (read in blocks: hours are fine)")
    an.add_argument("--demo", action="store_true", help="the demo's synthetic storm instead of a file")
    _words_args(an)
    _envelope_args(an)
    an.add_argument("--json", metavar="OUT", help="write the statistics, the ranking, every frame's values and every "
                    "source's (loudness, bands, onsets with their event times) here")
    an.add_argument("--plot", nargs="?", const=True, default=False, metavar="PNG",
                    help="plot every source (one panel each, onsets marked) and the weight (default file: OUT.json.png "
                    "with --json, else CLIP.envelope.png)")
    an.add_argument("--stems", action="store_true", help="also the stem sources drums, bass, vocals, other (Demucs, "
                    "features.stem_model; pip install \"aadiff-live[stems]\")")
    an.add_argument("--config", help="YAML config (default ./config.yaml if present); CLI flags override it")
    an.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    live = sub.add_parser("live", help="react to live input (the default command)")
    _model_args(live)
    _route_args(live)
    live.add_argument("--input", help="'default', a device index, a device-name substring, or a sound file "
                      "played in real time")
    live.add_argument("--monitor", action="store_true", help="with a file --input: also play it to the speakers")
    live.add_argument("--loop", action="store_true", help="with a file --input: start again at its end")
    live.add_argument("--no-display", action="store_true", help="headless (installations, tests)")
    live.add_argument("--fullscreen", action="store_true")
    live.add_argument("--display", type=int, help="monitor index for the window")
    live.add_argument("--duration", type=float, help="stop after this many seconds")
    live.add_argument("--display-fps", type=float, help="display refreshes per second (default 60); each shows "
                      "the atlas blend for the newest weight")
    live.add_argument("--record", help="record the frames as shown, with the captured audio, to this .mp4")
    live.add_argument("--stall-s", type=float, help="show RENDER STALLED when the renderer makes no progress for "
                      "this many seconds (default 20)")
    live.add_argument("--wait-for-device", type=float, metavar="SECONDS",
                      help="wait up to this long for a missing --input device (an interface that appears after "
                      "boot), looking again every few seconds; then exit 3 (default 0: exit 2 at once)")
    live.add_argument("--segment-minutes", type=float, help="with --record: close the file every N minutes and "
                      "start the next (names carry the start time, e.g. set_20261126T210000Z.mp4)")
    rig = live.add_argument_group("VJ rig (README: In a VJ rig); nothing listens unless asked")
    rig.add_argument("--osc-port", type=int, help="listen for OSC control on this UDP port (/aadiff/gain f, ...)")
    rig.add_argument("--osc-host", help="address to listen on (default 127.0.0.1: this machine only; "
                     "0.0.0.0 lets the whole network steer the show)")
    rig.add_argument("--osc-send", metavar="HOST:PORT", help="send /aadiff/envelope, weight, level_db, latency_ms "
                     "per displayed frame and /aadiff/words when they change")
    rig.add_argument("--midi", metavar="NAME", help="MIDI input: part of a port name (`aadiff-live midi-ports`); "
                     "mapping in config.yaml 'midi:'")
    rig.add_argument("--output", action="append", metavar="KIND[:NAME]", help="video out, repeatable: ndi[:NAME], "
                     "syphon[:NAME] (macOS), spout[:NAME] (Windows), virtualcam; each an extra: "
                     "pip install 'aadiff-live[ndi]'")
    rig.add_argument("--output-hud", action="store_true", help="draw the HUD into the frames that go out")

    sub.add_parser("devices", help="list audio input devices")
    sub.add_parser("midi-ports", help="list MIDI input ports (for --midi)")

    b = sub.add_parser("build-engine", help="build (or check) the compiled engine in engines/")
    _model_args(b)
    b.add_argument("--engines", help="engine folder (default ./engines)")
    b.add_argument("--force", action="store_true", help="rebuild even if a matching engine exists")

    d = sub.add_parser("download", help="fetch everything a gig needs (model, CLAP, tiny VAE) so the show runs offline")
    d.add_argument("model", nargs="?", help="hub id (default: the config's model, stabilityai/sd-turbo)")
    d.add_argument("--clap", help="CLAP checkpoint (default: the config's, laion/clap-htsat-unfused)")
    d.add_argument("--no-clap", action="store_true", help="skip CLAP (every show pins its words with --tokens)")
    d.add_argument("--vae", help="tiny: also TAESD (TAESDXL for SDXL); or a VAE hub id")
    d.add_argument("--variant", choices=["auto", "fp16", "plain"], default="auto",
                   help="weights: fp16 (half the download, for GPUs) where the repo has them, plain (fp32), or auto "
                        "(fp16 when this machine has CUDA)")
    d.add_argument("--config", help="YAML config whose model and CLAP to fetch")
    d.add_argument("-v", "--verbose", action="store_true")
    return parser


def _overrides(a: argparse.Namespace) -> dict[str, dict]:
    g = lambda name: getattr(a, name, None)  # noqa: E731
    return {
        "envelope": {"fps": g("fps"), "window": g("window"), "mode": g("smoothing"), "attack_ms": g("attack_ms"),
                     "release_ms": g("release_ms"), "w_min": g("w_min"), "w_max": g("w_max"), "gain": g("gain")},
        "tokens": {"clap_model": g("clap_model"), "top_k": g("top_k"), "tokens": g("tokens")},
        "model": {"model": g("model"), "steps": g("steps"), "guidance": g("guidance"), "seed": g("seed"),
                  "size": g("size"), "device": g("device"), "dtype": g("dtype"), "backend": g("backend"),
                  "vae": g("vae"), "strength": g("strength"), "compile": g("compile"), "loras": g("lora")},
        "atlas": {"levels": g("levels"), "levels_2": g("levels_2"), "levels_3": g("levels_3"), "mb": g("atlas_mb"),
                  "batch": g("atlas_batch")},
        "live": {"input": g("input"), "fullscreen": g("fullscreen") or None, "display": g("display"),
                 "segment_minutes": g("segment_minutes"), "loop": g("loop") or None,
                 "display_fps": g("display_fps"), "stall_s": g("stall_s"),
                 "wait_for_device_s": g("wait_for_device")},
        "osc": {"port": g("osc_port"), "host": g("osc_host"), "send": g("osc_send")},
        "midi": {"port": g("midi")},
        "video_out": {"targets": g("output"), "hud": g("output_hud") or None},
    }


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
    model = a.model or cfg.model.model
    clap = None if a.no_clap else (a.clap or cfg.tokens.clap_model)
    got = download(model, clap=clap, vae=a.vae or "auto", fp16=fp16)
    for repo, path in got.items():
        log.info("%s -> %s", repo, path)
    log.info("ready offline: `aadiff-live --model %s%s ...` loads from the cache (HF_HUB_OFFLINE=1 to be sure)", model,
             " --vae tiny" if a.vae == "tiny" else "")
    return 0


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
    _setup_logging(a.verbose, models=not (a.command == "analyse" and (not a.prompt or a.tokens)))
    from aadiff_live.config import load_config

    cfg_path = Path(a.config) if a.config else (Path("config.yaml") if Path("config.yaml").is_file() else None)
    overrides = _overrides(a)
    if a.command == "render" and a.demo:
        overrides["model"]["model"] = overrides["model"]["model"] or "tiny"
        overrides["model"]["size"] = overrides["model"]["size"] or "128"
        if not a.prompt:
            a.prompt = "a thunderstorm at sea"
            # the tiny CLAP has random weights too: pin the word that matches the demo sound
            a.tokens = a.tokens or "thunderstorm"
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
    if a.command == "download":
        return _download(a, cfg)
    if a.command == "render":
        if not a.out:
            raise UserError("render needs --out video.mp4")
        from aadiff_live.render import run_render

        return run_render(cfg, audio_path=a.audio, prompt=a.prompt or "", out=a.out, frames_dir=a.frames,
                          plot=a.plot, image=a.image, demo=a.demo, exact=a.exact)
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
    if a.command == "live":
        if cfg.routes:
            raise UserError("--route / routes: live mode does not take routes yet; use them with `aadiff-live render`")
        from aadiff_live.live.app import run_live

        if a.segment_minutes is not None and not a.record:
            raise UserError("--segment-minutes needs --record OUT.mp4 (it splits the recording into files)")

        return run_live(cfg, prompt=a.prompt or "", no_display=a.no_display, duration=a.duration,
                        record=a.record, monitor=a.monitor, config_path=cfg_path)
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
