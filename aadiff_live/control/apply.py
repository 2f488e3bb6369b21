"""Apply the changes taken from the inbox (once per displayed frame) to the live show, scenes included.

The rig (live/rig.py) implements :class:`Target`; this module decides the order and the meaning: a scene
first (its prompt, words, seed, window and gain), then the single parameters, so a knob moved
in the same frame as a scene switch wins over the scene's value.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from aadiff_live.control.params import ControlInbox
from aadiff_live.control.settings import SceneConfig

log = logging.getLogger(__name__)
KEEP: Any = object()  # "leave as it is" for set_render's words


class Target(Protocol):
    def set_gain(self, gain: float) -> None: ...

    def set_envelope(self, **values: float) -> None:
        """Any of w_min, w_max, window (frames), window_ms, attack_ms, release_ms."""

    def set_render(self, *, prompt: str | None = None, words: Any = KEEP, seed: int | None = None,
                   scene: str | None = None) -> str | None:
        """New prompt / pinned words (a list, or None: CLAP chooses) / seed, from ``scene`` (None: no scene
        any more, e.g. a prompt typed or sent); an error message or None."""

    def set_freeze(self, on: bool) -> None: ...

    def set_hud(self, on: bool) -> None: ...

    def set_scene(self, number: int, scene: SceneConfig) -> None: ...

    def set_tempo(self, bpm: float) -> str | None:
        """Propose a tempo (to a Link session); why not, or None."""


def scene_of(scenes: list[SceneConfig], number: int) -> SceneConfig | None:
    return scenes[number - 1] if 1 <= number <= len(scenes) else None


def apply_changes(changes: dict[str, Any], target: Target, scenes: list[SceneConfig],
                  inbox: ControlInbox, routes=None) -> None:
    """``routes``: the show's routes (``set_gain(word, g)``, ``set_range(word, lo, hi)``), steered by
    ``route:<word>:gain`` / ``route:<word>:range`` changes (OSC ``/aadiff/route/<word>/...``)."""
    if not changes:
        return
    if routes is not None:
        apply_route_changes(changes, routes)
    if "scene" in changes:
        n = int(changes["scene"])
        scene = scene_of(scenes, n)
        if scene is None:
            inbox.ignored("scene", f"scene {n} does not exist ({len(scenes)} in config.yaml 'scenes:')")
        else:
            err = target.set_render(prompt=scene.prompt, words=scene.words, seed=scene.seed, scene=scene.name)
            if err is not None:
                inbox.ignored("scene", f"scene {n} '{scene.name}': {err}")
            else:
                if scene.window is not None:
                    target.set_envelope(window=scene.window)
                if scene.gain is not None:
                    target.set_gain(scene.gain)
                target.set_scene(n, scene)
                log.info("scene %d: %s", n, scene.name)
    env = {k: float(changes[k]) for k in ("w_min", "w_max", "window_ms", "attack_ms", "release_ms") if k in changes}
    if env:
        target.set_envelope(**env)
    if "gain" in changes:
        target.set_gain(float(changes["gain"]))
    # the prompt and seed first, then the words (checked against that prompt): a bad word list arriving in the
    # same frame as a new prompt drops only the words
    render: dict[str, Any] = {}
    if "prompt" in changes:
        render["prompt"] = changes["prompt"]
    if "seed" in changes:
        render["seed"] = int(changes["seed"])
    if render:
        err = target.set_render(**render)
        if err is not None:
            inbox.ignored("prompt" if "prompt" in render else "seed", err)
    if "words" in changes:
        text = str(changes["words"])
        err = target.set_render(words=[w.strip() for w in text.split(",") if w.strip()] or None)
        if err is not None:
            inbox.ignored("words", err)
    if "freeze" in changes:
        target.set_freeze(bool(changes["freeze"]))
    if "hud" in changes:
        target.set_hud(bool(changes["hud"]))
    if "tempo" in changes:
        err = target.set_tempo(float(changes["tempo"]))
        if err is not None:
            inbox.ignored("tempo", err)


def apply_route_changes(changes: dict[str, Any], routes) -> None:
    """Each ``route:<word>:gain`` (a float) or ``route:<word>:range`` ((w_min, w_max)) change to ``routes``."""
    for name, value in changes.items():
        if not name.startswith("route:"):
            continue
        _, word, what = name.split(":", 2)
        try:
            route = routes.set_gain(word, value) if what == "gain" else routes.set_range(word, *value)
        except KeyError:  # --route auto: CLAP gave the word's route to another word meanwhile
            log.warning("OSC: no route has the word '%s' now (routed: %s)", word, ", ".join(routes.words))
            continue
        log.info("route %s: gain %g, weight in [%g, %g]", route.label, route.gain, route.w_min, route.w_max)
