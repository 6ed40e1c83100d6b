"""The `arsenale` console script.

`arsenale data status` is run often (in prompts, hooks, scripts) and must answer in about 100 ms,
process start included; Typer and the pydantic models it builds cost more than that alone. So that one
command, in its plain forms (`data status [PATH…] [--json]`), is answered here without them; every
other command line goes to the Typer application, which prints the same output.
"""

from __future__ import annotations

import json
import os
import sys

_STYLES = {"green": "32", "red": "31", "yellow": "33", "bold": "1"}


def _fast_status(args: list[str]) -> int:
    from arsenale.cli.datawork import status_lines, status_reports
    from arsenale.errors import ArsenaleError

    as_json = "--json" in args
    targets = [a for a in args if a != "--json"] or None
    try:
        reports = status_reports(targets)
    except ArsenaleError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    if as_json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
        return 0
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    for text, style in status_lines(reports):
        code = _STYLES.get(style)
        print(f"\x1b[{code}m{text}\x1b[0m" if color and code else text)
    return 0


def main() -> None:
    args = sys.argv[1:]
    if args[:2] == ["data", "status"] and not any(a.startswith("-") and a != "--json" for a in args[2:]):
        try:
            sys.exit(_fast_status(args[2:]))
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(141)
    from arsenale.cli.main import main as typer_main

    typer_main()


if __name__ == "__main__":
    main()
