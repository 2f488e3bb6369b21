"""Routes: --route SOURCE=WORD[:W_MIN:W_MAX] and config.yaml 'routes:', checked before any model loads."""

from __future__ import annotations

import numpy as np
import pytest

from aadiff_live.analysis.routes import LiveRoutes, Route, resolve_routes, route_weights
from aadiff_live.config import EnvelopeConfig, RouteConfig, load_config, parse_route
from aadiff_live.errors import UserError

PROMPT = "Thunder and rain over a dark sea"
KNOWN = ["loudness", "low", "mid", "high", "onset", "onset:low", "onset:mid", "onset:high"]
ENV = EnvelopeConfig(w_min=0.1, w_max=1.5, gain=1.2)


def rc(source: str, word: str, **kw) -> RouteConfig:
    return RouteConfig(source=source, word=word, **kw)


def test_parse_route_forms():
    assert parse_route("low=thunder") == rc("low", "thunder")
    assert parse_route(" onset:low=Thunder:-0.5:2 ") == rc("onset:low", "Thunder", w_min=-0.5, w_max=2.0)
    assert parse_route("auto") == "auto"


@pytest.mark.parametrize("text", ["lowthunder", "low=", "=thunder", "low=thunder:1", "low=thunder:a:b",
                                  "low=thunder:1:2:3"])
def test_parse_route_errors_are_one_line_with_the_form(text):
    with pytest.raises(UserError) as err:
        parse_route(text)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"--route {text!r}") and "SOURCE=WORD[:W_MIN:W_MAX]" in msg


def test_resolve_fills_in_the_envelope_settings():
    routes = resolve_routes([rc("low", "Thunder"), rc("high", "rain", w_min=0.0, w_max=3.0, gain=0.5,
                                                         attack_ms=5.0, release_ms=80.0)], ENV, PROMPT, KNOWN)
    assert routes[0] == Route("low", "thunder", 0.1, 1.5, 1.2)
    assert routes[1] == Route("high", "rain", 0.0, 3.0, 0.5, 5.0, 80.0)
    assert routes[0].label == "low → thunder"
    assert resolve_routes([], ENV, PROMPT, KNOWN) == []


@pytest.mark.parametrize("routes,needles", [
    ([rc("bass", "thunder")], ["unknown source 'bass'", "known sources: loudness, low"]),
    ([rc("low", "fire")], ["'fire' is not a word of the prompt", PROMPT]),
    ([rc("low", "dark sea")], ["'dark sea' is not one word"]),
    ([rc("low", "thunder"), rc("high", "Thunder")], ["'thunder' is on two routes (low and high)"]),
    ([rc("low", "thunder"), rc("mid", "rain"), rc("high", "sea"), rc("onset", "dark")],
     ["4 routes", "at most 3 words", "drop 1"]),
    ([rc("low", "thunder", attack_ms=5.0), rc("low", "rain")], ["source 'low' has two different attack/release"]),
])
def test_bad_routes_are_one_line_errors(routes, needles):
    with pytest.raises(UserError) as err:
        resolve_routes(routes, ENV, PROMPT, KNOWN)
    msg = str(err.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, msg


def test_routes_and_pinned_words_do_not_mix():
    with pytest.raises(UserError, match="--tokens and --route"):
        resolve_routes([rc("low", "thunder")], ENV, PROMPT, KNOWN, pinned=["rain"])


def test_route_weights_per_frame_and_live_changes():
    routes = resolve_routes([rc("low", "thunder"), rc("high", "rain", w_min=2.0, w_max=0.0)], ENV, PROMPT, KNOWN)
    values = {"low": np.array([0.0, 0.5, 1.0]), "high": np.array([1.0, 0.5, 0.0]), "mid": np.zeros(3)}
    w = route_weights(values, routes)
    assert w.shape == (3, 2)
    np.testing.assert_allclose(w[:, 0], 0.1 + 1.4 * 1.2 * values["low"])
    np.testing.assert_allclose(w[:, 1], 2.0 - 2.0 * 1.2 * values["high"])
    live = LiveRoutes(routes)
    assert live.weights({"low": 1.0, "high": 0.0}) == pytest.approx((0.1 + 1.4 * 1.2, 2.0))
    live.set_gain("rain", 0.5)
    live.set_range("thunder", 0.0, 1.0)
    assert live.weights({"low": 1.0, "high": 1.0}) == pytest.approx((1.2, 2.0 - 2.0 * 0.5))
    assert live.ranges() == [(0.0, 1.0), (2.0, 0.0)] and live.words == ["thunder", "rain"]
    with pytest.raises(KeyError):
        live.set_gain("sea", 1.0)


def test_routes_in_config_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("routes:\n  - {source: low, word: thunder, gain: 2.0, attack_ms: 5}\n  - {source: high, word: rain}\n")
    cfg = load_config(p)
    assert cfg.routes == [rc("low", "thunder", gain=2.0, attack_ms=5.0), rc("high", "rain")]
    p.write_text("routes: auto\n")
    assert load_config(p).routes == "auto"
    p.write_text("routes:\n  - {source: low, wrd: thunder}\n")
    with pytest.raises(UserError, match="unknown key 'routes.0.wrd'"):
        load_config(p)


def test_route_groups_one_per_word_and_the_77_token_window(tiny_components):
    from aadiff_live.tokens.words import route_groups, word_positions

    tok = tiny_components.tokenizer
    g = route_groups(tok, PROMPT, ["thunder", "rain"])
    found = word_positions(tok, PROMPT, ["thunder", "rain"])
    assert g == [found["thunder"], found["rain"]] and all(g)
    long = "a " * 90 + "storm"
    with pytest.raises(UserError) as err:
        route_groups(tok, long, ["storm"])
    assert str(err.value).startswith("--route: 'storm' starts at token") and "77-token window" in str(err.value)


@pytest.mark.parametrize("args,needle", [
    (["--route", "lowthunder"], "--route 'lowthunder': expected SOURCE=WORD"),
    (["--route", "auto", "--route", "low=thunder"], "--route auto chooses every route itself"),
    (["--levels-2", "1"], "--levels-2"),
])
def test_cli_route_errors_exit_2(cli, tmp_path, args, needle):
    code, _, err = cli("render", "--demo", "--out", tmp_path / "x.mp4", *args)
    assert code == 2 and err.strip().count("\n") == 0 and needle in err, err


class FakeRanker:
    """CLAP stand-in: fixed similarities per source, told apart by the audio's own first sample."""

    def __init__(self, table: dict[float, dict[str, float]]) -> None:
        self.table = table
        self.calls = 0

    def rank(self, mono, samplerate, words, template):
        from aadiff_live.tokens.clap import Ranking

        self.calls += 1
        return Ranking({w: self.table[float(mono[0])][w] for w in words})


def test_auto_routes_give_each_source_a_different_word_for_the_best_total():
    from aadiff_live.analysis.routes import auto_routes

    # greedy (low takes its best, thunder) would leave high with rain: 0.9 + 0.1; the best total is 0.8 + 0.85
    ranker = FakeRanker({1.0: {"thunder": 0.9, "rain": 0.8, "sea": 0.0}, 2.0: {"thunder": 0.85, "rain": 0.1, "sea": 0.2}})
    audio = {"low": np.full(10, 1.0), "high": np.full(10, 2.0)}
    got = auto_routes(ranker, audio, 16000, ["thunder", "rain", "sea"], ENV, "{word}")
    assert [(r.source, r.word) for r in got.routes] == [("low", "rain"), ("high", "thunder")]
    assert got.routes[0] == Route("low", "rain", ENV.w_min, ENV.w_max, ENV.gain)
    assert got.scores["high"]["thunder"] == 0.85 and "low → rain (+0.800)" in got.table()
    # fewer words than sources: as many routes as words
    got = auto_routes(ranker, audio, 16000, ["sea"], ENV, "{word}")
    assert [(r.source, r.word) for r in got.routes] == [("high", "sea")]
    with pytest.raises(UserError, match="no content word"):
        auto_routes(ranker, audio, 16000, [], ENV, "{word}")


def test_band_audio_keeps_its_band_only():
    from aadiff_live.analysis.routes import band_audio

    sr = 32000
    t = np.arange(sr) / sr
    low, high = np.sin(2 * np.pi * 60 * t), np.sin(2 * np.pi * 8000 * t)
    rms = lambda x: float(np.sqrt(np.mean(x[sr // 10:-sr // 10] ** 2)))  # noqa: E731
    assert rms(band_audio(low + high, sr, 20, 200) - low) < 0.05 * rms(low)
    assert rms(band_audio(low + high, sr, 2000, 16000) - high) < 0.05 * rms(high)
    assert rms(band_audio(low, sr, 2000, 16000)) < 0.01


def test_demo_takes_routes_instead_of_its_pinned_word(tmp_path):
    """``render --demo`` pins "thunderstorm" (its CLAP is random too) unless routes choose the words: by
    --route, or by config.yaml's routes."""
    from aadiff_live.cli import build_parser, config_from_args

    def cfg_of(*argv, config=None):
        return config_from_args(build_parser().parse_args(["render", "--demo", "--out", "d.mp4", *argv]), config)

    assert cfg_of().tokens.tokens == ["thunderstorm"] and not cfg_of().routes
    cfg = cfg_of("--route", "low=thunderstorm", "--route", "high=sea")
    assert cfg.tokens.tokens is None and [(r.source, r.word) for r in cfg.routes] == [("low", "thunderstorm"), ("high", "sea")]
    yaml = tmp_path / "c.yaml"
    yaml.write_text("routes:\n  - {source: low, word: sea}\n")
    cfg = cfg_of(config=yaml)
    assert cfg.tokens.tokens is None and [r.word for r in cfg.routes] == ["sea"]
    assert cfg_of("--tokens", "sea").tokens.tokens == ["sea"]  # a word the user pinned stays pinned
