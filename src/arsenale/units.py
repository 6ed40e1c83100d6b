"""Human-readable byte counts, one spelling everywhere (CLI, dashboard, error messages)."""

from __future__ import annotations


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
