"""Where a run came from: git commit and dirty flag, command line, Python, packages, host.

Collected where the user's code runs (not on the server), once per process.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys

import blake3

TAG_PREFIX = "ars.source."


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def packages_hash() -> str:
    """A digest of every installed distribution and version: equal hashes, equal environments."""
    from importlib.metadata import distributions

    names = sorted({f"{d.metadata['Name']}=={d.version}".lower() for d in distributions() if d.metadata["Name"]})
    return blake3.blake3("\n".join(names).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _static_source() -> dict[str, str]:
    tags = {
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "packages_hash": packages_hash(),
    }
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["git_commit"] = commit
        status = _git("status", "--porcelain", "--untracked-files=no")
        tags["git_dirty"] = "unknown" if status is None else ("true" if status else "false")
        branch = _git("rev-parse", "--abbrev-ref", "HEAD")
        if branch:
            tags["git_branch"] = branch
    return tags


def source_tags() -> dict[str, str]:
    tags = dict(_static_source())
    tags["command"] = " ".join([os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python",
                                *sys.argv[1:]])[:1000]
    return {TAG_PREFIX + k: v for k, v in tags.items()}
