"""The audio ring buffer between the capture callback and its readers (docs/design.md §4).

The ring has one writer, the PortAudio callback (or the file feeder), which only copies: the
samples into a preallocated array and the block's capture time into a preallocated table, then
publishes the new sample count. It takes no lock and allocates no array, so the callback never
waits for a reader. Readers (analysis, recorder, CLAP) each keep their own cursor. A reader that
falls more than the capacity behind loses the oldest samples and is told how many.

Because the writer may take no lock, it cannot wake a reader; readers wait on their stop Event
for about half a block (:meth:`RingReader.wait`), so a quit wakes them at once.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Single-writer audio ring ``[capacity, channels]`` float32 with per-block capture times."""

    def __init__(self, capacity: int, channels: int, samplerate: int, max_blocks: int = 4096) -> None:
        self.capacity = int(capacity)
        self.channels = int(channels)
        self.samplerate = int(samplerate)
        self._data = np.zeros((self.capacity, self.channels), dtype=np.float32)
        # block table: start sample index and capture time (time.monotonic of the block's first sample)
        self._block_start = np.zeros(max_blocks, dtype=np.int64)
        self._block_time = np.zeros(max_blocks, dtype=np.float64)
        self._max_blocks = max_blocks
        # NB: written by the writer only, read by every reader thread; a Python int assignment is atomic.
        self.written = 0  # samples written so far
        self.n_blocks = 0

    def write(self, block: np.ndarray, capture_time: float) -> None:
        """Copy ``block`` ``[n, channels]`` in. Real-time safe: two slice copies and a few scalar stores."""
        n = block.shape[0]
        if n > self.capacity:  # cannot happen with the block sizes used; keep the newest samples
            block = block[n - self.capacity:]
            capture_time += (n - self.capacity) / self.samplerate
            n = self.capacity
        pos = self.written % self.capacity
        first = min(n, self.capacity - pos)
        self._data[pos:pos + first] = block[:first, :self.channels]
        if first < n:
            self._data[:n - first] = block[first:, :self.channels]
        b = self.n_blocks % self._max_blocks
        self._block_start[b] = self.written
        self._block_time[b] = capture_time
        self.n_blocks += 1  # publish the block before the samples: readers look up times up to `written`
        self.written += n

    def copy_range(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` (absolute indices still inside the ring) as a new array."""
        n = stop - start
        out = np.empty((n, self.channels), dtype=np.float32)
        pos = start % self.capacity
        first = min(n, self.capacity - pos)
        out[:first] = self._data[pos:pos + first]
        if first < n:
            out[first:n] = self._data[:n - first]
        return out

    def latest(self, n: int) -> np.ndarray:
        """The newest ``n`` samples (fewer at the start), from any thread."""
        stop = self.written
        start = max(0, stop - min(n, self.capacity // 2))  # half the ring: the writer cannot reach it meanwhile
        return self.copy_range(start, stop)

    def capture_time(self, sample: int) -> float | None:
        """Capture time (monotonic s) of absolute sample index ``sample``: the newest block at or before it,
        plus the offset within it at the nominal rate. None before the first block."""
        nb = self.n_blocks
        if nb == 0:
            return None
        lo = max(0, nb - self._max_blocks)
        # blocks are in order; scan back from the newest (a reader asks about recent samples)
        for k in range(nb - 1, lo - 1, -1):
            b = k % self._max_blocks
            start = int(self._block_start[b])
            if start <= sample:
                return float(self._block_time[b]) + (sample - start) / self.samplerate
        b = lo % self._max_blocks
        return float(self._block_time[b]) + (sample - int(self._block_start[b])) / self.samplerate


class RingReader:
    """One reader's cursor into a :class:`RingBuffer`. Not shared between threads."""

    def __init__(self, ring: RingBuffer, start: int | None = None) -> None:
        self.ring = ring
        self.pos = ring.written if start is None else start
        self.lost = 0  # samples overwritten before this reader got them

    def available(self) -> int:
        return self.ring.written - self.pos

    def read(self, max_samples: int | None = None) -> tuple[int, np.ndarray]:
        """(absolute index of the first sample, samples ``[n, channels]``) of what is new; n may be 0."""
        written = self.ring.written
        behind = written - self.pos
        if behind > self.ring.capacity:
            skip = behind - self.ring.capacity // 2
            self.lost += skip
            self.pos += skip
        stop = written if max_samples is None else min(written, self.pos + max_samples)
        start = self.pos
        data = self.ring.copy_range(start, stop)
        self.pos = stop
        return start, data

