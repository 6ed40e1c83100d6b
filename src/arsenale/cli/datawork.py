"""The typer-free core of `arsenale data`: finding the workspace and wording a status report.

Shared by the Typer commands and by the console entry point's fast path for `arsenale data status`,
which answers without importing Typer, pydantic or Rich.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arsenale.data.workspace import DataWorkspace


def find_home() -> Path:
    home = os.environ.get("ARSENALE_HOME")
    if home:
        return Path(home).expanduser().resolve()
    start = Path.cwd().resolve()
    for folder in (start, *start.parents):
        if (folder / ".arsenale").is_dir():
            return folder / ".arsenale"
    return start / ".arsenale"


def workspace(remote: str | None = None, link: str | None = None) -> "DataWorkspace":
    from arsenale.data.cache import DEFAULT_LINK_MODES, LINK_MODES, DataCache
    from arsenale.data.statcache import StatCache
    from arsenale.data.workspace import DataWorkspace
    from arsenale.errors import InvalidInput

    modes = DEFAULT_LINK_MODES
    if link:
        modes = tuple(m.strip() for m in link.split(",") if m.strip())
        unknown = [m for m in modes if m not in LINK_MODES]
        if unknown or not modes:
            raise InvalidInput(f"--link takes a comma-separated list of {', '.join(LINK_MODES)}", field="link")
    home = find_home()
    return DataWorkspace(home.parent, DataCache(home / "cache", modes), remote or None,
                         statcache=StatCache(home / "statcache.db"))


def status_lines(reports: list[Any]) -> list[tuple[str, str]]:
    """(text, style) lines describing status reports, styles as Rich names them."""
    if not reports:
        return [("nothing tracked here: `arsenale data add PATH` starts versioning a file or folder", "")]
    lines: list[tuple[str, str]] = []
    for r in reports:
        if r.clean:
            lines.append((f"{r.manifest}: up to date", "green"))
            continue
        lines.append((f"{r.manifest}:", "bold"))
        if r.missing:
            lines.append((f"  missing: {r.path}", "red"))
        for label, items, style in (("added", r.added, "green"), ("removed", r.removed, "red"),
                                    ("modified", r.modified, "yellow")):
            lines.extend((f"  {label + ':':<10}{p}", style) for p in items)
    return lines
