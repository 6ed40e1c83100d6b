"""The `arsenale` command line: Typer commands, one module per component, thin over `arsenale.Client`.

Every command parses its arguments, calls one service method through
`Client()` (local or HTTP, chosen by ARSENALE_URI) and renders the result as
a Rich table or, with `--json`, as JSON for scripts. Errors are
`ArsenaleError`s: `main` prints their message and exits with their code.
"""

from __future__ import annotations

import os

__all__ = ["use_uri"]


def use_uri(uri: str | None) -> None:
    """Point this process at `uri` (overriding ARSENALE_URI) before any `Client` is built."""
    if uri is not None:
        os.environ["ARSENALE_URI"] = uri
