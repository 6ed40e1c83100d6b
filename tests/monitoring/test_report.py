"""monitoring.report.render_report: one self-contained, escaped, deterministic HTML page."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from arsenale import InvalidInput, monitoring
from arsenale.monitoring.report import render_report
from arsenale.registry.contract import build_contract

SHIFTED = ["mean radius", "mean texture", "worst area", "mean smoothness"]
HOSTILE = '<script>alert("x")</script>'
VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "wbr", "source", "track", "embed"}


class _Tree(HTMLParser):
    """Checks nesting (every element closed, in order) and collects what the tests look at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Tree:
    tree = _Tree()
    tree.feed(html)
    tree.close()
    assert not tree.errors, tree.errors[:5]
    assert not tree.stack, f"unclosed: {tree.stack}"
    return tree


def column_order(html: str) -> list[str]:
    """Column names in the order of the columns table's rows."""
    table = html.split("<h2>Columns</h2>", 1)[1].split("</table>", 1)[0]
    return [unescape(n) for n in re.findall(r'<td class="name"><code>(.*?)</code>', table)]


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    X = load_breast_cancer(as_frame=True).data
    rng = np.random.default_rng(7)
    ref = X.iloc[::2].reset_index(drop=True).copy()
    cur = X.iloc[1::2].reset_index(drop=True).copy()
    for c in SHIFTED:
        cur[c] = cur[c] * 1.4 + cur[c].std()
    ref["site"] = rng.choice(["rome", "oslo", HOSTILE], len(ref), p=[0.5, 0.3, 0.2])
    cur["site"] = rng.choice(["rome", "oslo", HOSTILE], len(cur), p=[0.1, 0.2, 0.7])
    return ref, cur


@pytest.fixture(scope="module")
def html(frames: tuple[pd.DataFrame, pd.DataFrame]) -> str:
    ref, cur = frames
    return render_report(monitoring.drift(ref, cur), reference=ref, current=cur, title="Cancer <weekly>",
                         generated_at_ms=1_700_000_000_000)


# ---------------------------------------------------------------- structure

def test_parses_and_lists_every_column_drifted_first(html: str, frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, cur = frames
    parse(html)
    report = monitoring.drift(ref, cur)
    order = column_order(html)
    assert sorted(order) == sorted(ref.columns)
    drifted = [n for n, c in report.columns.items() if c.drifted]
    assert set(SHIFTED) | {"site"} <= set(drifted)
    assert order[:len(drifted)] == drifted  # drifted first, in the report's order
    assert not any(report.columns[n].drifted for n in order[len(drifted):])
    assert "drift detected" not in html or report.dataset_drift
    share = f"{report.number_of_drifted_columns} of {report.number_of_columns} tested"
    assert share in html and "2023-11-14 22:13:20 UTC" in html
    assert "284 rows" in html and "285 rows (data)" in html


def test_one_svg_chart_per_column(html: str, frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tree = parse(html)
    assert tree.tags.count("svg") == len(frames[0].columns) == 31
    assert html.count('<path class="ref"') == html.count('<path class="cur"') == 30  # numeric overlays
    assert html.count('<rect class="ref"') == html.count('<rect class="cur"') == 3  # the category bars


def test_nothing_external(html: str) -> None:
    tree = parse(html)
    lowered = html.lower()
    assert "http://" not in lowered and "https://" not in lowered and "src=" not in lowered
    assert "<script" not in lowered and "<link" not in lowered and "url(" not in lowered and "@import" not in lowered
    assert not [v for k, v in tree.attrs if k in ("href", "src", "xlink:href", "action")]
    assert "default-src 'none'" in html  # the CSP forbids any fetch even if something slipped in


def test_hostile_names_and_values_are_escaped(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, cur = frames
    ref, cur = ref.rename(columns={"mean area": HOSTILE}), cur.rename(columns={"mean area": HOSTILE})
    out = render_report(monitoring.drift(ref, cur), reference=ref, current=cur, title=HOSTILE)
    tree = parse(out)
    assert "<script" not in out.lower()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in out
    assert HOSTILE in column_order(out)
    assert tree.tags.count("script") == 0
    # the category value shows up, as text, in the bars' tooltips and labels
    assert any(HOSTILE in t for t in tree.text if "reference" in t)


# ---------------------------------------------------------------- determinism and size

def test_same_inputs_same_bytes(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, cur = frames
    a = render_report(monitoring.drift(ref, cur), reference=ref, current=cur, generated_at_ms=1)
    b = render_report(monitoring.drift(ref.copy(), cur.copy()), reference=ref.copy(), current=cur.copy(),
                      generated_at_ms=1)
    assert a.encode() == b.encode()
    untimed = render_report(monitoring.drift(ref, cur))
    assert "Generated" not in untimed and untimed == render_report(monitoring.drift(ref, cur))


def test_size_of_a_thirty_column_report(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, cur = frames
    ref, cur = ref.drop(columns="site"), cur.drop(columns="site")
    assert len(ref.columns) == 30
    out = render_report(monitoring.drift(ref, cur), reference=ref, current=cur, generated_at_ms=0)
    assert len(out.encode()) < 300_000
    big = pd.DataFrame({f"c{i}": np.random.default_rng(i).normal(size=20_000) for i in range(30)})
    out = render_report(monitoring.drift(big, big * 1.1), reference=big, current=big * 1.1)
    assert len(out.encode()) < 300_000  # the size does not grow with the rows


# ---------------------------------------------------------------- skipped columns, other references

def test_skipped_columns_show_their_reasons(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, cur = frames
    cur = cur.drop(columns=["mean radius"]).assign(**{"mean texture": np.nan})
    report = monitoring.drift(ref, cur)
    assert report.columns["mean radius"].status == report.columns["mean texture"].status == "skipped"
    out = render_report(report, reference=ref, current=cur)
    parse(out)
    order = column_order(out)
    assert order[-2:] == ["mean radius", "mean texture"]  # skipped ones last
    assert "missing from the current data" in out
    assert "the current data has no values (284 null)" in out
    assert out.count("no current values to draw") == 2  # the reference side is still drawn
    assert "<dt>Skipped columns</dt><dd>2</dd>" in out


def test_profiles_contracts_and_no_data(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, cur = frames
    profile = monitoring.reference_profile(ref)
    contract = build_contract(ref.drop(columns="site"))
    for reference in (profile, contract, contract.profile):
        report = monitoring.drift(reference, cur)
        out = render_report(report, reference=reference, current=cur)
        tree = parse(out)
        assert tree.tags.count("svg") == len(report.columns)
        assert out.count('<path class="ref"') == 30
    bare = render_report(monitoring.drift(ref, cur))
    assert parse(bare).tags.count("svg") == 31
    assert bare.count("pass reference= and current= to draw it") == 31


def test_prediction_and_quality_sections(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    ref, cur = frames
    features = ref.drop(columns="site")
    contract = build_contract(features)
    window = cur.drop(columns="site").assign(**{"mean area": cur["mean area"].where(cur.index % 5 > 0)})
    quality = monitoring.check_quality(contract, window.assign(extra=1))
    report = monitoring.drift(ref, cur, prediction="site")
    out = render_report(report, quality=quality, reference=ref, current=cur)
    parse(out)
    assert "<h2>Prediction</h2>" in out and "site" not in column_order(out)
    section = out.split("<h2>Data quality</h2>", 1)[1]
    assert section.index(">error<") < section.index(">warning<")  # errors first
    assert "extra column" in section and "mean area" in section
    assert "failed" in out and f"{len(quality.issues)} issues" in out


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInput, match="DriftReport"):
        render_report({"columns": {}})  # type: ignore[arg-type]
    report = monitoring.drift(pd.DataFrame({"a": [1.0, 2.0]}), pd.DataFrame({"a": [1.0, 3.0]}))
    with pytest.raises(InvalidInput, match="generated_at_ms"):
        render_report(report, generated_at_ms=1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="current"):
        render_report(report, current=[1, 2])
