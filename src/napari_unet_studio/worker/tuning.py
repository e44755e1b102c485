"""Choose the worker's torch thread count from measured step times (no torch here).

On a small machine the napari process and other programs take cores away from the
worker at unpredictable moments. A step split over two OpenMP threads then waits for the
thread that lost its core: on a 2-core machine with two other busy programs we measured
2-5 training steps in 20 s with two threads and 86-91 with one; on an idle machine two
threads are 1.6x faster than one (docs/benchmarks.md). Neither count is right for every
moment, so the worker measures: it trains a few steps with one thread, tries all cores,
keeps the faster count, and re-checks the other from time to time.
"""

from __future__ import annotations

import math
import statistics

__all__ = ["ThreadTuner"]


class ThreadTuner:
    """Alternate between thread counts by median step time.

    Parameters
    ----------
    max_threads : int
        The engine's default count (all usable cores); 1 disables tuning.
    window : int
        Steps measured per candidate.
    stay : int
        Steps kept on the winner before the other count is tried again; after a lost
        trial it at least doubles, and grows so that trials cost at most ``overhead``
        of the time (a trial step 8x slower than the winner's costs 7 winner steps, so
        the next trial waits 140 steps at 5 %); reset when the other count wins.
    max_stay : int
        Longest stay.
    abort : float
        A trial ends after one step slower than ``abort`` x the winner's median, so a
        count that is much slower costs a single step.
    overhead : float
        Share of the training time that lost trials may cost.
    """

    def __init__(self, max_threads: int, window: int = 6, stay: int = 40,
                 max_stay: int = 640, abort: float = 1.5, overhead: float = 0.05) -> None:
        # one thread first: on a busy machine more threads can be 10-30x slower per step
        # (and the first step sets the time to the first preview), on an idle one they
        # are at most ~2x faster, so starting with one risks little
        self.candidates = [1, int(max_threads)] if int(max_threads) > 1 else [1]
        self.window, self.base_stay, self.max_stay = int(window), int(stay), int(max_stay)
        self.abort, self.overhead = float(abort), float(overhead)
        self.current = self.candidates[0]
        self.medians: dict[int, float] = {}
        self.stay = self.base_stay
        self.switches = 0
        self._times: list[float] = []
        self._phase = "first"  # first (not counted) -> measure -> trial -> stay -> trial...
        self._left = 0

    @property
    def enabled(self) -> bool:
        """False with a single candidate (one core, or one thread asked for)."""
        return len(self.candidates) > 1

    @property
    def best(self) -> int:
        """The count with the lowest measured median so far (``current`` before any)."""
        return min(self.medians, key=self.medians.__getitem__) if self.medians else self.current

    def observe(self, seconds: float) -> int:
        """Record one step's time; returns the thread count for the next step."""
        if not self.enabled:
            return self.current
        t = float(seconds)
        if self._phase == "first":  # includes the set-up of the first step
            self._phase = "measure"
        elif self._phase == "measure":
            self._times.append(t)
            if len(self._times) >= self.window:
                self.medians[self.current] = statistics.median(self._times)
                self._to(self._other(), "trial")
        elif self._phase == "trial":
            self._times.append(t)
            winner = self._other()
            if t > self.abort * self.medians[winner]:  # clearly slower: back at once
                self._lost(t / self.medians[winner])
                self._to(winner, "stay")
            elif len(self._times) >= self.window:
                self.medians[self.current] = statistics.median(self._times)
                if self.medians[self.current] < self.medians[winner]:
                    self.stay = self.base_stay
                    self._to(self.current, "stay")
                else:
                    self._lost(self.medians[self.current] / self.medians[winner])
                    self._to(winner, "stay")
        else:  # stay: keep a rolling window to refresh the winner's median
            self._times = [*self._times[-(self.window - 1):], t]
            self._left -= 1
            recent = statistics.median(self._times) if len(self._times) >= self.window else 0
            other = self.medians.get(self._other(), float("inf"))
            if recent > self.abort * other:  # the load changed: try the other count now
                self.stay = self.base_stay
                self._left = 0
            if self._left <= 0:
                self.medians[self.current] = statistics.median(self._times)
                self._to(self._other(), "trial")
        return self.current

    def _lost(self, ratio: float) -> None:
        """Wait longer before the next trial of a count that just lost by ``ratio``."""
        need = math.ceil(max(ratio - 1.0, 0.0) / self.overhead)
        self.stay = min(max(2 * self.stay, need), self.max_stay)

    def _other(self) -> int:
        return next(c for c in self.candidates if c != self.current)

    def _to(self, threads: int, phase: str) -> None:
        if threads != self.current:
            self.switches += 1
        self.current, self._phase, self._times, self._left = threads, phase, [], self.stay
