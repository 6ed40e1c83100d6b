"""The `arsenale` console script.

`arsenale data status` is run often (in prompts, hooks, scripts) and must answer in about 100 ms,
process start included; Typer and the pydantic models it builds cost more than that alone. So that
command, and `data add` whose small adds are dominated by start-up too, are answered here without them in
their plain forms (`data status [PATH…] [--json]`, `data add PATH… [--link MODES] [--json]`); every other
command line goes to the Typer application, which prints the same output.
"""

from __future__ import annotations

import json
import os
import sys

TYPE_CHECKING = False  # `typing` is not imported at run time: see arsenale/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_STYLES = {"green": "32", "red": "31", "yellow": "33", "bold": "1"}


def _answer(compute: Callable[[], Any], as_json: bool, to_json: Callable[[Any], Any],
            lines: Callable[[Any], list[tuple[str, str]]]) -> int:
    """Print what `compute` returns (JSON or styled lines), or its error as the Typer commands do."""
    from arsenale.errors import ArsenaleError

    try:
        result = compute()
    except ArsenaleError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    if as_json:
        print(json.dumps(to_json(result), indent=2, ensure_ascii=False))
    else:
        _print_lines(lines(result))
    return 0


def _fast_status(args: list[str]) -> int:
    from arsenale.cli.datawork import status_lines, status_reports

    targets = [a for a in args if a != "--json"] or None
    return _answer(lambda: status_reports(targets), "--json" in args, lambda r: r, status_lines)


def _print_lines(lines: list[tuple[str, str]]) -> None:
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    for text, style in lines:
        code = _STYLES.get(style)
        print(f"\x1b[{code}m{text}\x1b[0m" if color and code else text)


def _plain_add(args: list[str]) -> tuple[list[str], str | None, bool] | None:
    """(paths, link, json) of a plain `data add` command line; None for anything else (help, other flags)."""
    paths, link, as_json = [], os.environ.get("ARSENALE_DATA_LINK") or None, False
    it = iter(args)
    for a in it:
        if a == "--json":
            as_json = True
        elif a == "--link":
            link = next(it, None)
            if link is None:
                return None
        elif a.startswith("--link="):
            link = a.split("=", 1)[1]
        elif a.startswith("-"):
            return None
        else:
            paths.append(a)
    return (paths, link, as_json) if paths else None


def _fast_add(paths: list[str], link: str | None, as_json: bool) -> int:
    from arsenale.cli.datawork import add_lines, workspace

    def compute() -> list[Any]:
        ws = workspace(link=link)
        return [ws.add(p) for p in paths]

    return _answer(compute, as_json, lambda results: [r.to_dict() for r in results], add_lines)


def main() -> None:
    args = sys.argv[1:]
    fast = None
    if args[:2] == ["data", "status"] and not any(a.startswith("-") and a != "--json" for a in args[2:]):
        fast = lambda: _fast_status(args[2:])  # noqa: E731
    elif args[:2] == ["data", "add"] and (plain := _plain_add(args[2:])) is not None:
        fast = lambda: _fast_add(*plain)  # noqa: E731
    if fast is not None:
        try:
            sys.exit(fast())
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(141)
    from arsenale.cli.main import main as typer_main

    typer_main()


if __name__ == "__main__":
    main()
