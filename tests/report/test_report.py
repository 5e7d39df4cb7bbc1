"""pellucid.report: one self-contained page, escaped strings, sortable tables — checked in headless
Chromium."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile

import pytest
import torch

import pellucid
from pellucid import errors
from pellucid.inspect import structure, weights

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3))
    images = torch.rand(3, 1, 8, 8)
    lin = torch.nn.Linear(4, 2)
    tab = pellucid.integrated_gradients(lin, torch.rand(3, 4), target=1, steps=4)
    tab.feature_names = [EVIL, "age", "income", "zeta"]
    text = pellucid.gradient_x_input(lin, torch.rand(1, 4), target=0)
    text.feature_names, text.kind = ["a", "fine", EVIL, "film"], "text"
    items = [
        pellucid.saliency(cnn, images),
        ("tabular <i>rows</i>", tab),
        ("tokens", text),
        structure(cnn, images[:1]),
        weights(cnn),
        ("notes", "Plain text & <tags> stay text."),
        ("a table", [{"method": "b", "score": 2.5}, {"method": "a", "score": 10.0},
                     {"method": "c", "score": -1.0}]),
    ]
    path = pellucid.report(items, tmp_path_factory.mktemp("report") / "r.html", title=f"title {EVIL}")
    return path, tab


def test_page_has_sections_contents_and_escapes_every_user_string(page):
    path, _ = page
    doc = path.read_text()
    assert doc.count("<section") == 7 and doc.count('<li><a href="#') == 7
    assert "alert(1)" in doc and EVIL not in doc  # present, but only escaped
    assert "tabular &lt;i&gt;rows&lt;/i&gt;" in doc and "Plain text &amp; &lt;tags&gt;" in doc
    assert doc.count("<script>") == 1  # the page's own sorting script, nothing else
    # self-contained: pictures are data URIs and nothing is fetched from the network
    assert re.findall(r'src="([^"]{0,22})', doc) and all(
        s.startswith("data:image/png;base64,") for s in re.findall(r'src="([^"]{0,22})', doc))
    assert "http://" not in doc.replace("http://www.w3.org/2000/svg", "") and "https://" not in doc


def test_report_errors(tmp_path):
    with pytest.raises(errors.InputError, match="at least one"):
        pellucid.report([], tmp_path / "x.html")
    with pytest.raises(errors.InputError, match="cannot show a object"):
        pellucid.report([object()], tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


_PROBE = """<script>
window.__errors = []; window.__alerts = 0;
window.alert = function () { window.__alerts += 1; };
window.addEventListener("error", function (e) { window.__errors.push(String(e.message)); });
(function () { var ce = console.error; console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, " ")); ce.apply(console, arguments); }; })();
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var table = document.querySelector("#a-table table");
  var col = function (j) { return Array.prototype.map.call(table.tBodies[0].rows,
      function (r) { return r.cells[j].textContent; }); };
  var before = col(1);
  table.tHead.rows[0].cells[1].click(); var asc = col(1);
  table.tHead.rows[0].cells[1].click(); var desc = col(1);
  table.tHead.rows[0].cells[0].click(); var byName = col(0);
  var cells = Array.prototype.filter.call(document.querySelectorAll("td, span.tok"),
      function (c) { return c.textContent === %s; }).length;
  var out = document.createElement("pre"); out.id = "probe-result";
  out.textContent = JSON.stringify({images: imgs.length,
      loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
      svgs: document.querySelectorAll("svg").length, before: before, asc: asc, desc: desc,
      byName: byName, evilCells: cells, errors: window.__errors, alerts: window.__alerts,
      title: document.title});
  document.body.appendChild(out);
});
</script>"""


def test_page_in_headless_chromium(page, tmp_path):
    """Open the page in a real browser: images load, no errors, headers sort, no script runs."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (.ci/run installs Debian's chromium)")
    path, _ = page
    probed = tmp_path / "probed.html"
    probe = _PROBE % json.dumps(EVIL).replace("</", "<\\/")
    probed.write_text(path.read_text().replace("<head>", "<head>" + probe, 1))
    with tempfile.TemporaryDirectory() as profile:
        run = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
            capture_output=True, text=True, timeout=120,
        )
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', run.stdout, re.S)
    assert found, run.stderr[-2000:]
    import html as _html

    result = json.loads(_html.unescape(found.group(1)))
    assert result["errors"] == [] and result["alerts"] == 0
    assert result["images"] >= 4 and result["loaded"] == result["images"]
    assert result["svgs"] >= 1  # the structure graph, inline
    assert result["before"] == ["2.5", "10", "-1"]
    assert result["asc"] == ["-1", "2.5", "10"]  # numeric order, not "10" < "2.5"
    assert result["desc"] == ["10", "2.5", "-1"]
    assert result["byName"] == ["a", "b", "c"]
    # the name shows as text three times: in both values tables (tabular, tokens) and as a token
    assert result["evilCells"] == 3
    assert result["title"] == f"title {EVIL}"


def test_pellucid_report_is_the_function(tmp_path):
    import pellucid.reporting
    from pellucid import report

    assert report is pellucid.report is pellucid.reporting.report
    assert callable(report) and not isinstance(pellucid.report, type(pellucid))  # no module in disguise
    path = report([("numbers", {"a": 1, "b": 2.5})], tmp_path / "n.html")
    assert path.read_text().count("<section") == 1
