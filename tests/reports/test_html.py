"""report.html: everything report.md holds, interactive, self-contained, and rendered by
a real headless browser with the network off."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from srsweep.reports import write_report
from srsweep.reports.html import inline
from srsweep.reports.interactive import MAX_CURVES

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def page(replicated_records, tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    write_report(
        replicated_records,
        out,
        metric="avg_acc",
        goal="maximize",
        curve="acc",
        title="Replicated <study>",
        kernel="sd",
    )
    return out, (out / "report.html").read_text(), (out / "report.md").read_text()


@pytest.fixture(scope="module")
def crowded_page(crowded_records, tmp_path_factory):
    """A page of more curves than ``MAX_CURVES``: the best coloured, the rest one trace."""
    assert len(crowded_records) > MAX_CURVES
    out = tmp_path_factory.mktemp("crowded")
    write_report(
        crowded_records, out, metric="avg_acc", goal="maximize", curve="acc", title="Crowded"
    )
    return out, (out / "report.html").read_text(), ""


def test_inline_marks_become_html_and_the_rest_is_escaped():
    assert inline("a `x<y` **b** *c* [f](f.csv) <i> **x `*y*`**") == (
        'a <code>x&lt;y</code> <strong>b</strong> <em>c</em> <a href="f.csv">f</a> &lt;i&gt; '
        "<strong>x <code>*y*</code></strong>"
    )


def test_the_page_holds_everything_the_markdown_does(page):
    _, html, md = page
    assert "<title>Replicated &lt;study&gt;</title>" in html
    for heading in re.findall(r"^(#+) (.+)$", md, flags=re.M):
        level, text = len(heading[0]), inline(heading[1])
        assert f"<h{level}>{text}</h{level}>" in html
    for alt, name in re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", md):
        # interactive where there is a twin (with a link to the PNG), else the PNG embedded
        assert f'Static figure: <a href="{name}">' in html or f'<img alt="{alt}"' in html
    for name in re.findall(r"\]\(([^)]+\.csv)\)", md):
        assert f'<a href="{name}">' in html
    assert "<pre><code>srsweep run sd --set " in html  # the best run's command
    assert html.count("<tr>") > 24 and 'class="sortable"' in html  # every run, sortable


def test_the_page_is_self_contained_with_plotly_embedded_once(page):
    _, html, _ = page
    assert html.count("* plotly.js v") == 1
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", html)
    figures = html.count('class="plotly-graph-div"')
    # comparison, importance, avg_acc and curves by each of disc.lr and disc.loss, parallel
    assert figures == 1 + 1 + 2 + 2 + 1
    assert html.count("Plotly.newPlot(") == figures
    assert "hovertemplate" in html and "c0s0" in html  # hover names the runs


def _browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    pytest.skip(
        f"no headless browser ({', '.join(BROWSERS)}) on PATH: apt-get install chromium "
        "(.ci/run installs it)"
    )


def test_the_curves_past_the_highlighted_are_one_trace(crowded_page):
    _, html, _ = crowded_page
    assert html.count('"name":"40 other runs"') == 1
    assert html.count('"legendgroup":"others"') == 1


@pytest.mark.slow
@pytest.mark.parametrize("which", ["page", "crowded_page"], ids=["replicated", "crowded"])
def test_a_headless_browser_renders_every_figure_without_a_script_error(which, request, tmp_path):
    out, html, _ = request.getfixturevalue(which)
    browser = _browser()
    # No network: every host name fails to resolve, so nothing can be fetched.
    base = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=20000",
    ]
    url = (out / "report.html").as_uri()
    run = subprocess.run(
        [*base, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    errors = [line for line in console if "Uncaught" in line or "Error" in line]
    assert not errors, "\n".join(errors)
    expected = html.count('class="plotly-graph-div"')
    rendered = re.findall(r'class="plotly-graph-div js-plotly-plot"', run.stdout)
    assert len(rendered) == expected  # plotly marks each div it drew
    assert run.stdout.count('class="main-svg"') >= expected
    shot = tmp_path / "report.png"
    subprocess.run(
        [*base, "--window-size=1280,4000", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000
