"""The sound a command works on: a file read in blocks, or the demo's storm made in code.

Its own module so that :mod:`aadiff_live.audio.stream` does not import the demo (which imports
:mod:`aadiff_live.audio.decode`, which reads files through the stream): no import cycle.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aadiff_live.audio.stream import ArraySource, AudioSource, open_audio
from aadiff_live.errors import UserError

log = logging.getLogger(__name__)


def source_for(audio_path: str | Path | None, demo: bool = False, arg: str = "--audio") -> AudioSource:
    """The sound to render or analyse: a file read in blocks, or the generated demo storm (``--demo``)."""
    if demo:
        from aadiff_live.audio.demo import DEMO_CLAPS, demo_storm

        audio = demo_storm()
        log.info("demo sound: a synthetic storm generated in code (%.1f s, thunderclaps at %s s)", audio.duration,
                 ", ".join(f"{c:g}" for c in DEMO_CLAPS))
        return ArraySource(audio.samples, audio.samplerate, "demo")
    if not audio_path:
        raise UserError("no sound given; pass --audio clip.wav (or --demo for the built-in demo)")
    return open_audio(audio_path, arg)
