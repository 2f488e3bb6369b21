"""Sample rates the rest of the chain agrees on."""

from __future__ import annotations

# the rates AAC (the recorded video's audio track) accepts: capture uses one of them so the
# recording muxes the captured samples without resampling
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
# what a rate AAC does not accept is resampled to (render, the recorder, a capture device or file)
FALLBACK_RATE = 48000
