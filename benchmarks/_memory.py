"""Memory figures a benchmark's side process reports about itself (Linux), shared by the side scripts of every
venv: they run as scripts from this folder, so `from _memory import …` finds this file in any interpreter."""

from __future__ import annotations

import resource


def rss_mib() -> float:
    """Resident memory now."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    """The process's peak resident memory so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
