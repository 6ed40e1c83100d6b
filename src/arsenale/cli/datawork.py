"""The typer-free core of `arsenale data`: finding the workspace and wording a status report.

Shared by the Typer commands and by the console entry point's fast path for `arsenale data status`,
which answers without importing Typer, pydantic or Rich.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TYPE_CHECKING = False  # `typing` is not imported at run time: see arsenale/__init__.py
if TYPE_CHECKING:
    from typing import Any

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


def _no_blas_threads() -> None:
    """numpy, imported to cut large files into chunks, starts OpenBLAS's thread pool, which costs ~0.06 s of
    CPU in a short-lived process; the data commands do no linear algebra. Only for a process that has not
    loaded numpy yet (a command run from the shell, not an embedding program) and when the user set nothing."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


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
    _no_blas_threads()
    return DataWorkspace(home.parent, DataCache(home / "cache", modes), remote or None,
                         statcache=StatCache(home / "statcache.db"))


def status_reports(targets: list[str] | None) -> list[dict[str, Any]]:
    """`StatusReport.to_dict()` of each selected manifest (all under the workspace by default).

    Answered from stat information alone when every manifest is provably clean (`quick_status`), by the
    workspace's full status (which hashes what the stat cache cannot vouch for) otherwise.
    """
    quick = quick_status(targets)
    if quick is not None:
        return quick
    return [r.to_dict() for r in workspace().status(targets)]


def clean_report(manifest: str, path: str) -> dict[str, Any]:
    """`StatusReport(manifest, path).to_dict()`, without importing the dataclasses behind it."""
    return {"manifest": manifest, "path": path, "added": [], "removed": [], "modified": [], "missing": False,
            "hashed": 0, "clean": True}


def quick_status(targets: list[str] | None) -> list[dict[str, Any]] | None:
    """Reports for the selected manifests if every one is provably clean from stat information alone, else None.

    Provably clean: the manifest's bytes and the tree's stat fingerprint are those a previous full status
    recorded as matching (see `DataWorkspace.status`). Anything else (a changed file, a new manifest, a
    target outside the workspace) is left to the full status, which hashes what it must and words errors.
    """
    import sqlite3

    from arsenale.data.scan import MANIFEST_SUFFIX, find_manifests, still_clean

    home = find_home()
    db_path = home / "statcache.db"
    if not db_path.is_file():
        return None
    root = os.path.realpath(home.parent)
    if targets:
        manifests = []
        for t in targets:
            p = os.path.abspath(t)
            name = os.path.basename(p) if p.endswith(MANIFEST_SUFFIX) else os.path.basename(p) + MANIFEST_SUFFIX
            manifests.append(os.path.join(os.path.realpath(os.path.dirname(p)), name))
    else:
        manifests = find_manifests(root)
    if not manifests or not all(m.startswith(root + os.sep) for m in manifests):
        return None
    found: list[tuple[str, str]] = []
    try:
        db = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        for manifest in manifests:
            target = still_clean(db, manifest)
            if target is None:
                return None
            found.append((manifest, target))
    except (OSError, sqlite3.Error):  # a file vanished mid-walk, an old cache without the table: the full status
        return None
    finally:
        db.close()
    return [clean_report(os.path.relpath(m, root).replace(os.sep, "/"), os.path.relpath(t, root).replace(os.sep, "/"))
            for m, t in found]


def status_lines(reports: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(text, style) lines describing status reports (as dictionaries), styles as Rich names them."""
    if not reports:
        return [("nothing tracked here: `arsenale data add PATH` starts versioning a file or folder", "")]
    lines: list[tuple[str, str]] = []
    for r in reports:
        if r["clean"]:
            lines.append((f"{r['manifest']}: up to date", "green"))
            continue
        lines.append((f"{r['manifest']}:", "bold"))
        if r["missing"]:
            lines.append((f"  missing: {r['path']}", "red"))
        for label, items, style in (("added", r["added"], "green"), ("removed", r["removed"], "red"),
                                    ("modified", r["modified"], "yellow")):
            lines.extend((f"  {label + ':':<10}{p}", style) for p in items)
    return lines


def add_lines(results: list[Any]) -> list[tuple[str, str]]:
    """(text, style) lines describing `data add` results."""
    from arsenale.units import human_size

    lines = []
    for r in results:
        how = ", ".join(f"{n} by {m}" for m, n in sorted(r.stored_by.items())) or "all already cached"
        lines.append((f"{r.manifest}: {r.files} file(s), {human_size(r.size, missing='—')}; {r.hashed} hashed; "
                      f"new blobs: {how}" + ("" if r.changed else " (unchanged)"), "green" if r.changed else ""))
    return lines
