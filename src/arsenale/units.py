"""Human-readable byte counts and durations, one spelling everywhere (CLI, SDK, dashboard, error messages)."""

from __future__ import annotations

import math
import re
from typing import Any

from arsenale.errors import InvalidInput

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d|w)?\s*", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
            None: 1.0}


def human_size(n: int | None, missing: str = "") -> str:
    """1536 → '1.5 KiB'; None → `missing`."""
    if n is None:
        return missing
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def parse_duration(value: Any, *, field: str) -> float:
    """'500ms', '30s', '10m', '15min', '1h', '1d', '2w' or a number of seconds → seconds (positive and finite)."""
    if isinstance(value, bool):
        seconds = math.nan
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        unit = match.group(2).lower() if match.group(2) else None
        seconds = float(match.group(1)) * _SECONDS[unit]
    else:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidInput(f"{field} must be a positive duration like 500ms, 30s, 10m, 1h or 1d; got {value!r}",
                           field=field)
    return seconds


def format_duration(seconds: float) -> str:
    """3600 → '1h', 5400 → '90m', 604800 → '7d': the largest of d, h, m that divides it, else seconds (the
    inverse of `parse_duration` for the durations people write)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def human_duration(seconds: float | None, missing: str = "—") -> str:
    """A span for people: 0.25 → '250 ms', 42 → '42 s', 5400 → '1h 30m', 183600 → '2d 3h'; None → `missing`."""
    if seconds is None or not math.isfinite(seconds):
        return missing
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    if seconds < 1:
        return f"{sign}{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{sign}{seconds:.3g} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{sign}{minutes}m {int(seconds % 60):02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{sign}{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{sign}{days}d {hours}h"
