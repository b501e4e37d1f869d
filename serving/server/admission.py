"""Admission control: refuse at arrival what the server could not answer in time.

A request is admitted when fewer than `max_inflight` are in flight and, once `min_inflight`
are, its predicted wait `in flight / service rate` (Little's law) is within
`max_wait_seconds`. The service rate is measured, not configured: completions per second of
busy time (time with something in flight), smoothed over windows of `window_seconds`. So a
fast model admits many concurrent requests and a slow one few; the excess is refused as soon
as its handler runs (429 / RESOURCE_EXHAUSTED with a Retry-After hint) instead of waiting in
a queue until it times out, and the admitted requests finish within about `max_wait_seconds`.

Until a first window is measured only `max_inflight` applies. Lives on the event loop: no
locks.
"""
import math
import time

from drgrad.serving.server.errors import resource_exhausted

# Below this many in flight no request is refused on a prediction: a cold start's first slow
# calls measure a low rate, and must not turn a handful of concurrent clients away.
DEFAULT_MIN_INFLIGHT = 64
# Weight of the newest window in the smoothed service rate.
_RATE_SMOOTHING = 0.3


class Admission:
    """In-flight accounting and the admit/refuse decision.

    Args:
      max_inflight: hard bound on requests in flight.
      max_wait_seconds: longest predicted wait admitted.
      retry_after_seconds: the hint given with a refusal.
      window_seconds: busy time over which one service-rate sample is taken.
      min_inflight: requests in flight below which the predicted wait is not applied.
      clock: monotonic clock in seconds (tests pass their own).
    """

    def __init__(self, max_inflight, max_wait_seconds, retry_after_seconds,
                 window_seconds=0.25, min_inflight=DEFAULT_MIN_INFLIGHT, clock=time.monotonic):
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be >= 1, got {max_inflight}")
        if not max_wait_seconds > 0 or not window_seconds > 0:
            raise ValueError(f"max_wait_seconds and window_seconds must be > 0, got "
                             f"{max_wait_seconds} and {window_seconds}")
        self.max_inflight = max_inflight
        self.max_wait_seconds = max_wait_seconds
        self.retry_after_seconds = retry_after_seconds
        self.min_inflight = min_inflight
        self._window_seconds = window_seconds
        self._clock = clock
        self.inflight = 0
        self.rate = None             # completions per busy second; None until measured
        self._done = 0               # completions so far
        self._busy = 0.0             # busy seconds so far, up to the last idle moment
        self._busy_since = None      # start of the current busy stretch
        self._window = (0.0, 0)      # (busy seconds, completions) when the window began

    def _busy_seconds(self, now):
        return self._busy + (now - self._busy_since if self.inflight else 0.0)

    def _measure(self, now):
        """Closes the window once it holds `window_seconds` of busy time. Done at arrivals,
        so every completion before one (a whole merged batch) is in the window it closes."""
        busy = self._busy_seconds(now)
        window_busy, window_done = self._window
        if busy - window_busy >= self._window_seconds:
            sample = (self._done - window_done) / (busy - window_busy)
            self.rate = sample if self.rate is None else (
                _RATE_SMOOTHING * sample + (1 - _RATE_SMOOTHING) * self.rate)
            self._window = (busy, self._done)

    def predicted_wait(self):
        """Seconds a request arriving now would wait behind those in flight: 0 before a rate
        is measured, unbounded while nothing completes (a stuck model)."""
        if self.rate is None or not self.inflight:
            return 0.0
        return self.inflight / self.rate if self.rate > 0 else math.inf

    def admit(self):
        """Counts a request in, or raises RESOURCE_EXHAUSTED at once."""
        if self.inflight >= self.max_inflight:
            raise resource_exhausted(
                f"Server is at its limit of {self.max_inflight} requests in flight; retry "
                f"after {self.retry_after_seconds} s")
        now = self._clock()
        self._measure(now)
        wait = self.predicted_wait()
        if self.inflight >= self.min_inflight and wait > self.max_wait_seconds:
            raise resource_exhausted(
                f"Server overloaded: a new request would wait {wait * 1e3:.0f} ms, more than "
                f"{self.max_wait_seconds * 1e3:.0f} ms; retry after "
                f"{self.retry_after_seconds} s")
        if self.inflight == 0:
            self._busy_since = now
        self.inflight += 1

    def release(self):
        """Counts an admitted request out (answered, failed or cancelled alike)."""
        self._done += 1
        if self.inflight == 1:
            self._busy += self._clock() - self._busy_since
        self.inflight -= 1
