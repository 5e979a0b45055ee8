"""``genzoo compare``: the self-contained HTML report, its comparability rule, and a real browser.

Two tiny PixelRNN runs are trained and evaluated through the real CLI, the second with fewer
samples for the memorisation check (so those records have another protocol) and without sample
grids (so the report draws one). The page is then opened in headless Chromium, which must decode
every embedded picture.
"""
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from conftest import chromium_or_skip
from genzoo.cli import main
from genzoo.errors import GenzooError
from genzoo.evaluation.report import build_report, loss_keys, metric_columns

CHROMIUM = "chromium"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    for name, samples, extra in (("first", 24, ["--set", "sample_every=2"]),
                                 ("second", 16, ["--set", "sample_every=0"])):
        out = root / name
        assert main(["train", "pixelrnn", "--preset", "tiny", "--steps", "4", "--out", str(out), "--device", "cpu",
                     "--quiet", "--set", "checkpoint_every=2", *extra]) == 0
        assert main(["eval", str(out), "--device", "cpu", "--samples", str(samples)]) == 0
    return root / "first", root / "second"


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert build_report(list(runs), out) == out
    return out


class Page(HTMLParser):
    """The bits of a page the tests look at: body attributes, <img> sources, table rows and headers."""

    def __init__(self, text: str):
        super().__init__()
        self.body, self.imgs, self.tables, self.notes = {}, [], {}, []
        self._table, self._section, self._note = None, None, False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "img":
            self.imgs.append(a.get("src", ""))
        elif tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = {"head": [], "rows": []}
        elif tag in ("thead", "tbody") and self._table:
            self._section = tag
        elif tag == "tr" and self._table:
            self.tables[self._table]["rows" if self._section == "tbody" else "head"].append([])
        elif tag in ("td", "th") and self._table:
            part = self.tables[self._table]["rows" if self._section == "tbody" else "head"]
            part[-1].append("")
        elif tag == "p" and "note" in (a.get("class") or ""):
            self._note = True
            self.notes.append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag == "p":
            self._note = False

    def handle_data(self, data):
        if self._table and self._section:
            part = self.tables[self._table]["rows" if self._section == "tbody" else "head"]
            if part and part[-1]:
                part[-1][-1] += data
        if self._note:
            self.notes[-1] += data


def rec(metric, value, unit="nats", **protocol):
    return {"metric": metric, "value": value, "unit": unit, "protocol": protocol}


def test_numbers_share_a_column_only_when_metric_unit_and_protocol_agree():
    a = [rec("nll", 1.0, split="test", images=80), rec("near_copy_share", 0.1, "fraction", samples=1000, seed=0)]
    b = [rec("nll", 2.0, split="test", images=80), rec("near_copy_share", 0.2, "fraction", samples=500, seed=0),
         rec("nll", 0.5, "bits/dim", split="test", images=80)]
    cols, notes = metric_columns([a, b])
    nll = [c for c in cols if c.metric == "nll" and c.unit == "nats"]
    assert len(nll) == 1 and nll[0].values == [1.0, 2.0] and nll[0].shown_fields == {}
    share = [c for c in cols if c.metric == "near_copy_share"]
    assert [c.values for c in share] == [[0.1, None], [None, 0.2]]
    assert [c.shown_fields for c in share] == [{"samples": 1000}, {"samples": 500}]  # only the differing field
    assert len(notes) == 1 and notes[0].startswith("not comparable: near_copy_share [fraction] was measured")
    assert "samples: 1000 vs 500" in notes[0]
    a.append(rec("recall", 0.3, "fraction", samples=1000, seed=0))
    b.append(rec("recall", 0.4, "fraction", samples=500, seed=0))
    b.append(rec("precision", 0.4, "fraction", samples=500, seed=1))
    a.append(rec("precision", 0.4, "fraction", samples=500, seed=0))
    _, notes = metric_columns([a, b])  # one note per set of differing fields, naming every metric it splits
    assert notes == ["not comparable: near_copy_share [fraction], recall [fraction] were measured under different "
                     "protocols (samples: 1000 vs 500); these numbers are in separate columns",
                     "not comparable: precision [fraction] was measured under different protocols (seed: 0 vs 1); "
                     "these numbers are in separate columns"]
    assert [c.values for c in cols if c.unit == "bits/dim"] == [[None, 0.5]]  # another unit: its own column, no note


def test_two_protocols_held_by_every_run_are_separate_columns_without_a_note():
    a = [rec("nll", 1.0, estimator="exact"), rec("nll", 1.1, estimator="importance sampling", k=50)]
    b = [rec("nll", 2.0, estimator="exact"), rec("nll", 2.1, estimator="importance sampling", k=50)]
    cols, notes = metric_columns([a, b])
    assert [c.values for c in cols] == [[1.0, 2.0], [1.1, 2.1]]
    assert [c.shown_fields for c in cols] == [{"estimator": "exact", "k": "-"},
                                              {"estimator": "importance sampling", "k": 50}]
    assert notes == []


def test_loss_keys_are_the_losses_and_held_out_bits_per_dim():
    rows = [{"step": 1, "loss": 3.0, "bits_per_dim": 1.0, "grad_norm": 2.0, "pixels_per_s": 9.0},
            {"step": 2, "discriminator/loss": 1.0, "generator/loss": 2.0, "discriminator/grad_norm": 1.0},
            {"step": 2, "test_bits_per_dim": 1.5, "test_nll_nats": 3.0, "warnings": ["x"]}]
    assert loss_keys(rows) == ["loss", "discriminator/loss", "generator/loss", "test_bits_per_dim"]


def test_report_of_real_runs_is_self_contained_and_flags_the_protocol_mismatch(runs, report):
    text = report.read_text()
    assert "http://" not in text and "https://" not in text and "<link" not in text
    srcs = re.findall(r"""\bsrc\s*=\s*["']?([^"'\s>]*)""", text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    page = Page(text)
    assert len(page.imgs) == len(srcs)
    run_rows = page.tables["run-table"]["rows"]
    assert [r[:2] for r in run_rows] == [["first", "pixelrnn"], ["second", "pixelrnn"]]
    assert [r[4] for r in run_rows] == ["4", "4"]  # checkpoint step
    metric = page.tables["metric-table"]
    assert [r[0] for r in metric["rows"]] == ["first", "second"]
    headers = metric["head"][0]
    nll = [i for i, h in enumerate(headers) if h.startswith("nll") and "nats/image" in h]
    assert len(nll) == 1 and all(re.fullmatch(r"\d+\.\d+", r[nll[0]]) for r in metric["rows"])  # same protocol
    share = [i for i, h in enumerate(headers) if h.startswith("near_copy_share")]
    assert len(share) == 2
    assert "samples=24" in headers[share[0]] and "samples=16" in headers[share[1]]
    assert metric["rows"][0][share[1]] == "\u2014" and metric["rows"][1][share[0]] == "\u2014"  # never side by side
    assert len(page.notes) == 1 and page.notes[0].startswith("not comparable: near_copy_share")
    assert "median_nn_test_distance" in page.notes[0] and "(samples: 24 vs 16)" in page.notes[0]
    # pictures: both sample grids (the second drawn now), both nearest-neighbour figures, both training curves
    assert "samples/step_0000004.png" in text and "16 samples drawn for this report" in text
    assert text.count("eval_nearest.png") == 2 and text.count("metrics.jsonl</figcaption>") == 2
    assert len(page.imgs) == 6


def test_a_real_browser_renders_the_tables_and_decodes_every_picture(report, tmp_path):
    exe = chromium_or_skip()
    proc = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", report.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = Page(proc.stdout)
    m = len(dom.imgs)
    assert m == 6 and dom.body.get("data-images-ok") == f"{m}/{m}"
    assert [r[0] for r in dom.tables["metric-table"]["rows"]] == ["first", "second"]
    assert len(dom.tables["run-table"]["rows"]) == 2
    assert any(n.startswith("not comparable:") for n in dom.notes)


def test_bad_inputs_are_one_line_errors_and_write_nothing(runs, tmp_path):
    out = tmp_path / "r.html"
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GenzooError, match="not a genzoo run folder"):
        build_report([runs[0], plain], out)
    with pytest.raises(GenzooError, match="no such run folder"):
        build_report([tmp_path / "missing"], out)
    no_eval = tmp_path / "no_eval"
    no_eval.mkdir()
    (no_eval / "run.json").write_text(json.dumps({"model_name": "pixelrnn"}))
    with pytest.raises(GenzooError, match=r"no eval.json; run `genzoo eval .*no_eval` first") as e:
        build_report([no_eval], out)
    assert "\n" not in str(e.value)
    (no_eval / "eval.json").write_text(json.dumps({"nll_nats": 3.0}))  # an old flat file without records
    with pytest.raises(GenzooError, match="no metric records"):
        build_report([no_eval], out)
    with pytest.raises(GenzooError, match=r"\.html"):
        build_report([runs[0]], tmp_path / "r.png")
    with pytest.raises(GenzooError, match="at least one run"):
        build_report([], out)
    assert not out.exists()


def test_a_run_whose_model_cannot_be_drawn_is_reported_not_hidden(runs, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(runs[1], broken)  # the run without sample grids: the report must draw one
    (broken / "checkpoint.pt").write_bytes(b"not a checkpoint")
    out = build_report([runs[0], broken], tmp_path / "r.html")
    page = Page(out.read_text())
    assert [r[0] for r in page.tables["metric-table"]["rows"]] == ["first", "broken"]
    assert re.search(r"broken: no samples: .*checkpoint", out.read_text())


def test_the_compare_command_writes_the_page_or_exits_2_with_one_line(runs, tmp_path, capsys):
    from conftest import run_cli

    code, _, err = run_cli(capsys, "compare", *runs, "-o", tmp_path / "r.html")
    assert code == 0 and (tmp_path / "r.html").read_text().count("<img") > 0, err
    code, _, err = run_cli(capsys, "compare", runs[0], tmp_path / "missing", "-o", tmp_path / "s.html")
    assert code == 2 and "no such run folder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.html").exists()


def test_numbers_measured_on_different_data_never_share_a_column():
    embedded = {"data": "pokemon", "data_options": {}, "data_digest": "2cb731fa1a75bffd"}
    shuffled = {"data": "pokemon:/tmp/poke", "data_options": {}, "data_digest": "9f0e55aa01c3d2b4"}
    a = [rec("nll", 1.0, "nats/image", split="test", images=80, **embedded)]
    b = [rec("nll", 2.0, "nats/image", split="test", images=80, **shuffled)]
    cols, notes = metric_columns([a, b])
    assert [c.values for c in cols] == [[1.0, None], [None, 2.0]]
    assert [c.shown_fields for c in cols] == [{"data": "pokemon", "data_digest": "2cb731fa1a75bffd"},
                                              {"data": "pokemon:/tmp/poke", "data_digest": "9f0e55aa01c3d2b4"}]
    assert len(notes) == 1 and "data_digest: 2cb731fa1a75bffd vs 9f0e55aa01c3d2b4" in notes[0]


def test_records_without_a_data_identity_take_the_spec_of_their_eval_file(tmp_path):
    from genzoo.evaluation.report import check_eval

    ev = {"data": "pokemon", "metrics": [rec("nll", 1.0, split="test"), rec("nll", 2.0, split="test", data="mnist")]}
    records = check_eval(ev, tmp_path / "eval.json")
    assert [r["protocol"]["data"] for r in records] == ["pokemon", "mnist"]
    assert "data" not in ev["metrics"][0]["protocol"]  # the file's object is not changed


def test_a_null_value_shows_a_dash_with_its_reason(tmp_path):
    from genzoo.evaluation.report import RunSummary, _metric_table

    cols, _ = metric_columns([[{**rec("mode_kl_from_uniform", None), "reason": "no sample is high quality"}],
                              [rec("mode_kl_from_uniform", 0.25)]])
    runs = [RunSummary(tmp_path, label, {}, {}, []) for label in ("a", "b")]
    html = _metric_table(runs, cols)
    assert '<td title="no sample is high quality">&mdash;</td>' in html and "<td>0.2500</td>" in html
