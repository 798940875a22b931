"""A small terminal progress bar for downloads and training loops (no dependencies).

On a terminal it redraws one line with ``\\r``; anywhere else (a log file, a CI job, a
pipe) it writes nothing at all, so logs are not flooded with bar fragments; callers print
a plain line there when a :class:`Ticker` says one is due (every 10 seconds).
"""

from __future__ import annotations

import numbers
import shutil
import sys
import time
from typing import TextIO

__all__ = ["Progress", "Ticker", "format_amount", "format_duration"]

# Indirection so tests can drive the clock.
_now = time.monotonic

_SI_PREFIXES = ("", "k", "M", "G", "T", "P", "E")

# Units written the SI way with the prefix on the unit ("3.4 MB/s"); for every other unit
# the prefix goes on the number ("12.3k samples/s").
_PREFIX_JOINS_UNIT = frozenset({"B", "b", "bit"})

_MIN_BAR_WIDTH = 5


class Progress:
    """A progress line: description, bar, count/total, elapsed, ETA, rate and a postfix.

    Example on a terminal::

        train-images-idx3-ubyte.gz:  45%|#########...........| 4.5 MB/9.9 MB [00:01<00:01, 3.4 MB/s]

    Args:
        total: number of units expected, or ``None`` when unknown (no bar, no ETA).
        desc: text at the start of the line.
        unit: name of one unit, e.g. ``"samples"`` or ``"B"``.
        stream: where to draw; defaults to ``sys.stderr`` (looked up when the bar is made).
        enabled: ``True`` draws, ``False`` writes nothing; ``None`` (default) draws only
            when ``stream.isatty()``.
        unit_scale: show counts with SI prefixes (``1.2 MB``) instead of plain integers.
            Rates always use prefixes.
        min_interval: redraw at most this often, in seconds. Reaching ``total`` and
            :meth:`close` always redraw.

    Raises:
        TypeError: ``total`` is not an integer or None.
        ValueError: ``total`` or ``min_interval`` is negative.
    """

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        unit: str = "it",
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        unit_scale: bool = False,
        min_interval: float = 0.1,
    ) -> None:
        if total is not None:
            if isinstance(total, bool) or not isinstance(total, numbers.Integral):
                raise TypeError(f"Progress: total must be an int or None, got {total!r}")
            if total < 0:
                raise ValueError(f"Progress: total must be >= 0, got {total}")
            total = int(total)
        if not min_interval >= 0:
            raise ValueError(f"Progress: min_interval must be >= 0 seconds, got {min_interval!r}")
        self.total = total
        self.desc = desc
        self.unit = unit
        self.unit_scale = unit_scale
        self.min_interval = float(min_interval)
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            enabled = _isatty(self.stream)
        self.enabled = bool(enabled) and self.stream is not None
        self.n = 0
        self.postfix = ""
        self._start = _now()
        self._last_draw = self._start
        self._last_len = 0
        self._closed = False
        if self.enabled:
            self._draw(self._start)

    def update(self, n: int = 1) -> None:
        """Add ``n`` units and redraw if ``min_interval`` has passed or ``total`` is reached."""
        before = self.n
        self.n += n
        if not self.enabled or self._closed:
            return
        now = _now()
        reached_total = self.total is not None and before < self.total <= self.n
        if reached_total or now - self._last_draw >= self.min_interval:
            self._draw(now)

    def set_postfix(self, text: str) -> None:
        """Set the text shown after the statistics, e.g. ``"loss 0.123 acc 0.98"``."""
        self.postfix = text
        if not self.enabled or self._closed:
            return
        now = _now()
        if now - self._last_draw >= self.min_interval:
            self._draw(now)

    def close(self) -> None:
        """Draw the final state and end the line. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._draw(_now())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def format_line(self, now: float, width: int) -> str:
        """Return the line as drawn at time ``now``, at most ``width - 1`` characters wide.

        One column stays free because some terminals wrap when the last one is written.
        """
        elapsed = max(now - self._start, 0.0)
        rate = self.n / elapsed if elapsed > 0 and self.n > 0 else None
        rate_text = (
            f"{format_amount(rate, self.unit, scale=True)}/s"
            if rate is not None
            else f"? {self.unit}/s"
        )
        head = f"{self.desc}: " if self.desc else ""
        postfix = f" {self.postfix}" if self.postfix else ""
        limit = max(width - 1, 0)
        if self.total is None:
            count = self._amount(self.n)
            variants = [f"{count} [{format_duration(elapsed)}, {rate_text}]", count, ""]
            bar = ""
            fraction = 0.0
        else:
            fraction = min(max(self.n / self.total, 0.0), 1.0) if self.total else 1.0
            head += f"{fraction * 100:3.0f}%"
            if self.unit_scale:
                count = f"{self._amount(self.n)}/{self._amount(self.total)}"
            else:
                count = f"{self.n}/{self.total} {self.unit}"
            remaining = self.total - self.n
            eta = remaining / rate if rate is not None and remaining >= 0 else None
            eta_text = format_duration(eta) if eta is not None else "?"
            times = f"{format_duration(elapsed)}<{eta_text}"
            variants = [f" {count} [{times}, {rate_text}]", f" {count} [{times}]", f" {count}", ""]
        # The postfix (a run's latest metrics) matters more than the statistics: on a
        # narrow terminal drop the bar first, then the rate, the times and the count.
        tail = variants[-1]
        for variant in variants:
            if len(head) + len(variant) + len(postfix) <= limit:
                tail = variant
                break
        tail += postfix
        bar = ""
        if self.total is not None:
            bar_width = width - 1 - len(head) - len(tail) - 2
            if bar_width >= _MIN_BAR_WIDTH:
                filled = int(fraction * bar_width)
                bar = "|" + "#" * filled + "." * (bar_width - filled) + "|"
        return (head + bar + tail)[:limit]

    def _amount(self, value: float) -> str:
        if self.unit_scale:
            return format_amount(value, self.unit, scale=True)
        return f"{value} {self.unit}"

    def _draw(self, now: float) -> None:
        width = shutil.get_terminal_size((80, 24)).columns
        line = self.format_line(now, width)
        # Blank out what is left of a longer previous line.
        padding = " " * max(self._last_len - len(line), 0)
        self.stream.write("\r" + line + padding)
        self.stream.flush()
        self._last_len = len(line)
        self._last_draw = now


class Ticker:
    """Says when a plain progress line is due: at most every ``interval`` seconds.

    For output that is not a terminal (a log file, CI): a line every ``interval``
    seconds however long an epoch or evaluation takes, instead of a bar.
    """

    def __init__(self, interval: float = 10.0):
        self.interval = float(interval)
        self.start = _now()
        self._last = self.start

    def due(self) -> bool:
        """True (and restart the interval) when ``interval`` seconds have passed since the
        last line."""
        now = _now()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False

    def mark(self) -> None:
        """A line was just printed for another reason: restart the interval."""
        self._last = _now()

    @property
    def elapsed(self) -> float:
        return _now() - self.start


def format_amount(value: float, unit: str, *, scale: bool = True) -> str:
    """Format a count or rate with an SI prefix: ``1.2 MB``, ``12.3k samples``, ``512 B``.

    Args:
        value: the number (non-negative for sensible output).
        unit: the unit name.
        scale: use SI prefixes (powers of 1000); otherwise print the number as it is.
    """
    if not scale:
        return f"{value} {unit}"
    prefix_index = 0
    scaled = float(value)
    while abs(scaled) >= 1000 and prefix_index < len(_SI_PREFIXES) - 1:
        scaled /= 1000
        prefix_index += 1
    number = _three_digits(scaled, is_integer=prefix_index == 0 and float(value).is_integer())
    if number == "1000" and prefix_index < len(_SI_PREFIXES) - 1:
        # 999.6 rounds up; say 1.0k rather than 1000.
        prefix_index += 1
        number = "1.0"
    prefix = _SI_PREFIXES[prefix_index]
    if unit in _PREFIX_JOINS_UNIT:
        return f"{number} {prefix}{unit}"
    return f"{number}{prefix} {unit}"


def format_duration(seconds: float) -> str:
    """Format seconds as ``MM:SS`` or, from one hour on, ``H:MM:SS``."""
    total = int(seconds + 0.5)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}"


def _three_digits(x: float, *, is_integer: bool) -> str:
    if is_integer:
        return str(int(x))
    if abs(x) < 1:
        return f"{x:.2f}"
    if abs(x) < 99.95:
        return f"{x:.1f}"
    return f"{x:.0f}"


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False  # no isatty, or a closed stream
