"""Gate reports: Markdown for a pull request, JUnit XML that CI systems parse."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from arsenale.gates.report import junit_xml, markdown
from arsenale.gates.results import CheckResult
from arsenale.gates.stats import Interval

RESULTS = [
    CheckResult("performance.roc_auc", True, "roc_auc 0.9950 vs champion 0.9800", 0.995, 0.98,
                Interval(0.015, 0.004, 0.027, 0.95, 1000)),
    CheckResult("performance.accuracy", False, "gain +0.0100 | interval <below> -0.02\nmay be worse", 0.93, 0.92,
                Interval(0.01, -0.02, 0.04, 0.95, 1000)),
]


def test_markdown_says_the_verdict_and_each_check() -> None:
    text = markdown("fraud/7 against fraud@champion", RESULTS)
    assert text.startswith("### ❌ fraud/7 against fraud@champion: failed")
    rows = [line for line in text.splitlines() if line.startswith("| performance.")]
    assert len(rows) == 2 and "**fail**" in rows[1] and "pass" in rows[0]
    assert "+0.0150 [+0.0040, +0.0270]" in rows[0]
    assert rows[1].count(" | ") == 5  # the pipe and newline in the message do not break the table
    assert markdown("first", RESULTS[:1]).startswith("### ✅ first: passed")


def test_junit_has_one_case_per_check_and_a_failure_with_its_reason() -> None:
    root = ET.fromstring(junit_xml("gate", RESULTS).split("\n", 1)[1])
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["performance.roc_auc", "performance.accuracy"]
    failure = cases[1].find("failure")
    assert failure is not None and "may be worse" in (failure.text or "") and "<below>" in failure.get("message", "")
    assert cases[0].find("failure") is None


def test_an_empty_gate_is_still_a_valid_report() -> None:
    root = ET.fromstring(junit_xml("nothing", []).split("\n", 1)[1])
    assert root.find("testsuite").get("tests") == "0"  # type: ignore[union-attr]


def test_the_html_report_draws_intervals_and_every_table_and_escapes_text() -> None:
    from arsenale.gates.html import render_html

    results = [*RESULTS, CheckResult("fairness.sex.equalized_odds_difference", False, "<b>0.43</b> > 0.3", 0.43,
                                     details={"groups": {"<i>F</i>": {"rows": 93, "candidate": {"metric": 0.7},
                                                                      "champion": {"metric": 0.57}},
                                                         "M": {"rows": 84, "candidate": {"metric": 0.54},
                                                               "champion": {"metric": 0.54}}},
                                              "columns": {"age": "answered", "city": "failed: ValueError"},
                                              "limit": 0.3, "sensitive": ["sex"]})]
    page = render_html("Gate <x>", results, notes=["no champion <yet>"])
    assert page == render_html("Gate <x>", results, notes=["no champion <yet>"])  # deterministic
    assert page.count('class="ci"') == 3 * sum(r.interval is not None for r in results)
    assert "&lt;b&gt;0.43&lt;/b&gt;" in page and "<b>0.43" not in page and "&lt;i&gt;F&lt;/i&gt;" in page
    groups = page.split("<h3>groups</h3>")[1].split("</table>")[0]
    assert "candidate metric" in groups and groups.count("<rect") == 4  # candidate and champion per group
    assert "failed: ValueError" in page.split("<h3>columns</h3>")[1]
    assert "<dt>limit</dt><dd>0.3</dd>" in page and "<dd>sex</dd>" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
