"""A circuit breaker for one peer province's node: after `threshold`
failures in a row the peer is cut off for `cooldown_s` (calls for it are
refused at once instead of each waiting out its deadline); then one call
goes through as a probe: its success closes the circuit, its failure opens
it again for another cool-down."""

from __future__ import annotations

import time
from collections.abc import Callable


class Breaker:
    def __init__(self, threshold: int = 5, cooldown_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def open(self) -> bool:
        return self._opened_at is not None

    def admit(self) -> float | None:
        """None if a call may go now, else the seconds until the next probe."""
        if self._opened_at is None:
            return None
        wait = self._opened_at + self._cooldown_s - self._clock()
        if wait > 0 or self._probing:
            return max(wait, 0.0)
        self._probing = True
        return None

    def succeeded(self) -> None:
        self._failures, self._opened_at, self._probing = 0, None, False

    def failed(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            self._opened_at, self._probing = self._clock(), False

    def abandoned(self) -> None:
        """The call ended without telling (cancelled by its caller): let the next one probe."""
        self._probing = False
