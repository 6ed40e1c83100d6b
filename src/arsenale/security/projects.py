"""Projects: the boundary every experiment, model, dataset, deployment, monitor, prompt, index and trace
lives inside.

Each of those rows carries a `project` column (`default` unless said otherwise). Where a request or a block
of code stands is one context variable, a `ProjectScope`:

- `home` is where new things are created;
- `confined` says whether reads see only `home`'s things. A token made for project `fraud` confines every
  request it signs to `fraud`; a token for all projects (`*`) sees everything unless the request names a
  project with the `X-Arsenale-Project` header. Embedded use is unconfined by default and
  `with arsenale.project("fraud"):`, `ARSENALE_PROJECT=fraud` or `arsenale --project fraud …` confine it; a
  remote client sends that project to the server in the header.

The stores check the scope where they read a row by its key (`visible_row`: a row of another project reads
as absent, so the caller's own "not found" error is raised and a guessed id tells nothing) and where they
list (`in_scope`: a WHERE clause). Child rows (runs, model versions, dataset versions, alerts, gate runs…)
are reached through their parent's check.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from arsenale.errors import InvalidInput

__all__ = ["DEFAULT_PROJECT", "PROJECT_HEADER", "ProjectScope", "check_project_name", "current", "header_value",
           "home", "in_scope", "project", "set_scope", "use_scope", "visible", "visible_row"]

DEFAULT_PROJECT = "default"
PROJECT_HEADER = "X-Arsenale-Project"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class ProjectScope:
    """Where new things go (`home`) and whether reads are limited to it (`confined`)."""

    home: str = DEFAULT_PROJECT
    confined: bool = False

    def sees(self, project: str | None) -> bool:
        return not self.confined or (project or DEFAULT_PROJECT) == self.home


_scope: ContextVar[ProjectScope | None] = ContextVar("arsenale_project_scope", default=None)


def check_project_name(name: Any) -> str:
    """A project's name (not '*': a thing belongs to one project)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput("a project is 1-128 letters, digits, '.', '_' or '-' starting with a letter or digit; "
                           f"got {name!r}", field="project")
    return name


def current() -> ProjectScope:
    """The scope in force: the innermost `use_scope`/`project` block, else `ARSENALE_PROJECT` (`--project`),
    else every project, creating in `default`."""
    scope = _scope.get()
    if scope is not None:
        return scope
    env = os.environ.get("ARSENALE_PROJECT")
    return ProjectScope(check_project_name(env), confined=True) if env else _UNCONFINED


def header_value() -> str | None:
    """What a remote client sends as `X-Arsenale-Project`: the project it is confined to, if any."""
    scope = current()
    return scope.home if scope.confined else None


_UNCONFINED = ProjectScope()


def home() -> str:
    """The project new rows are created in."""
    return current().home


@contextmanager
def use_scope(scope: ProjectScope) -> Iterator[ProjectScope]:
    reset = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(reset)


def project(name: str, *, confined: bool = True) -> Any:
    """`with arsenale.project("fraud"):` creates in `fraud` and (unless `confined=False`) sees only it."""
    return use_scope(ProjectScope(check_project_name(name), confined))


def set_scope(scope: ProjectScope) -> None:
    """Set the scope for the rest of the current context (a request, a CLI command); no block to leave."""
    _scope.set(scope)


def visible(project_of_row: str | None) -> bool:
    return current().sees(project_of_row)


def visible_row(row: Any, column: str = "project") -> Any:
    """`row`, or None when it belongs to a project outside the scope (so the caller reports "not found")."""
    if row is None:
        return None
    scope = current()
    if not scope.confined:
        return row
    value = row._mapping[column] if hasattr(row, "_mapping") else row[column]
    return row if scope.sees(value) else None


def in_scope(column: Any) -> Any:
    """A WHERE clause limiting `column` (a table's `project`) to the scope; always true when unconfined."""
    import sqlalchemy as sa  # here, not at the top: remote clients import this module without SQLAlchemy

    scope = current()
    return column == scope.home if scope.confined else sa.true()
