"""A gate's results in the formats CI systems read: Markdown (a pull-request comment) and JUnit XML (any CI's
test view, one test case per check, a failure carrying its reason)."""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree import ElementTree as ET

from arsenale.gates.results import CheckResult

__all__ = ["junit_xml", "markdown"]


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no pipe ends the cell, no newline ends the row."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown(title: str, results: Sequence[CheckResult]) -> str:
    passed = all(r.passed for r in results)
    lines = [f"### {'✅' if passed else '❌'} {_cell(title)}: {'passed' if passed else 'failed'}", "",
             "| check | result | candidate | champion | gain (interval) | detail |",
             "|---|---|---|---|---|---|"]
    for r in results:
        interval = "—" if r.interval is None else (f"{r.interval.gain:+.4f} "
                                                    f"[{r.interval.low:+.4f}, {r.interval.high:+.4f}]")
        lines.append(f"| {_cell(r.name)} | {'pass' if r.passed else '**fail**'} | {_fmt(r.candidate)} | "
                     f"{_fmt(r.champion)} | {interval} | {_cell(r.message)} |")
    return "\n".join(lines) + "\n"


def junit_xml(title: str, results: Sequence[CheckResult]) -> str:
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite", name=title, tests=str(len(results)),
                          failures=str(sum(not r.passed for r in results)), errors="0")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="arsenale.gate", name=r.name)
        if r.passed:
            ET.SubElement(case, "system-out").text = r.message
        else:
            failure = ET.SubElement(case, "failure", message=r.message[:500])
            failure.text = r.message
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
