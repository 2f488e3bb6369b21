"""Routes in the live show (docs/design.md §1.6): each routed word's weight from its source, every refresh.

The analysis thread posts every source's value per hop (:class:`~aadiff_live.live.messages.WeightSample`);
the routes' weights are a few multiply-adds of those, taken where they are needed (the renderer's fill
order, the display's blend, the HUD, the recording, OSC out) from one :class:`LiveRoutes`, so a gain or
range sent over OSC counts from the next refresh on.
"""

from __future__ import annotations

from aadiff_live.analysis.routes import LiveRoutes, Route, resolve_routes
from aadiff_live.analysis.sources import check_source, is_beat_locked, known_sources
from aadiff_live.config import MAX_ROUTES, Config
from aadiff_live.errors import UserError
from aadiff_live.live.messages import WeightSample
from aadiff_live.tokens.words import content_words


def live_routes(cfg: Config, prompt: str) -> list[Route]:
    """The routes of config.yaml or --route, checked against the prompt and the live sources (none: []).
    ``--route auto``: each band (at most 3) with a content word of the prompt, in order, until CLAP has
    heard each band on its own and chosen."""
    if cfg.routes == "auto":
        if cfg.tokens.tokens:
            raise UserError("--tokens and --route auto both choose the weighted words; give one of them")
        words = content_words(prompt)
        if not words:
            raise UserError(f"--route auto: the prompt \"{prompt}\" has no content word to route; add nouns such "
                            f"as 'thunder'")
        bands = list(cfg.features.bands)[:MAX_ROUTES]
        e = cfg.envelope
        return [Route(b, w, e.w_min, e.w_max, e.gain) for b, w in zip(bands, words, strict=False)]
    if not cfg.routes:
        return []
    for r in cfg.routes:  # the one source check (a stem is offline only; its message lists the beat-locked ones)
        check_source(r.source, cfg.features, live=True, flag=f"--route {r.source}={r.word}")
    locked = beat_locked_sources(cfg)
    if locked and cfg.tempo.source == "off":
        raise UserError(f"--route {locked[0]}=...: the source follows the tempo, but --tempo is off; use --tempo "
                        "audio (the beat of the input), midi (MIDI clock) or link")
    return resolve_routes(cfg.routes, cfg.envelope, prompt, known_sources(cfg.features, live=True) + locked,
                          pinned=cfg.tokens.tokens, live=True)


def beat_locked_sources(cfg: Config) -> list[str]:
    """The beat-locked sources (beat, bar, lfo:SHAPE:BEATS) the routes use, each once."""
    if cfg.routes == "auto":
        return []
    return list(dict.fromkeys(r.source for r in cfg.routes if is_beat_locked(r.source)))


def point(routes: LiveRoutes, sample: WeightSample) -> float | tuple[float, ...]:
    """What the atlas is looked up at: one weight (one route) or the weight vector."""
    w = routes.weights(sample.sources)
    return w[0] if len(w) == 1 else w


def hud_bars(routes: LiveRoutes, sample: WeightSample | None) -> list[tuple[str, float, float]]:
    """One bar per route: ``(source → word, weight, where the weight sits in the route's range, 0..1)``."""
    out = []
    values = sample.sources if sample is not None else {}
    for r, w in zip(routes.routes, routes.weights(values), strict=True):
        span = r.w_max - r.w_min
        out.append((r.label, w, min(1.0, max(0.0, (w - r.w_min) / span)) if span else 0.0))
    return out


def route_row(routes: LiveRoutes, sample: WeightSample) -> dict:
    """The recording's per-frame route fields: each routed source's value and each word's weight."""
    names = dict.fromkeys(r.source for r in routes.routes)
    return {"sources": {n: float(sample.sources.get(n, 0.0)) for n in names},
            "weights": dict(zip(routes.words, routes.weights(sample.sources), strict=True))}
