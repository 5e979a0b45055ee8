"""``genzoo compare RUN1 RUN2 ... -o report.html``: one self-contained HTML page about several runs.

The page holds, for every run, its model, data and step; one table of the metric records of each
run's ``RUN/eval.json`` (written by ``genzoo eval``); a sample grid (the newest
``RUN/samples/step_*.png``, or one drawn now with seed 0 when the run has none); every other
picture in the run folder (``eval_nearest.png``, completions, traversals, ...); and training curves
from ``RUN/metrics.jsonl`` (one matplotlib panel per logged loss key). Pictures are embedded as
base64 ``data:`` URIs and the style sheet is inline, so the file can be mailed or archived alone.

Comparability: two numbers share a column only when their metric name, unit AND whole protocol
(data spec, loader options and digest of the images, split, sample counts, estimator, feature
extractor and its weights hash, seed, ...) are equal. A
metric measured under several protocols gets one column per protocol, headed by the protocol fields
that differ; when those columns hold different runs' numbers, a visible "not comparable" note says
which fields differ. Nothing is ever silently put side by side. A value written as ``null`` (not
finite) shows as a dash, its ``reason`` as the cell's tooltip.

The run files are read through :func:`genzoo.io.read_json` and their keys checked
(:func:`check_eval`, :func:`check_run_description`): a hostile or damaged file is one line naming
the file and the key, never a traceback.

A small inline script sets ``data-images-ok="N/M"`` on ``<body>`` after loading (N of the M
``<img>`` decoded), which a headless-browser test reads.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from genzoo._version import __version__
from genzoo.errors import GenzooError
from genzoo.io import atomic_write_text, json_kind, read_json
from genzoo.models.base import GenerativeModel
from genzoo.training.run import CHECKPOINT, EVAL_JSON, METRICS, RUN_JSON, load_run
from genzoo.viz import grid, sample_picture

MAX_EMBED_BYTES = 8 << 20  # a picture larger than this is listed, not embedded
GENERATED_SAMPLES = 16  # grid size when a run has no saved sample grid


@dataclass
class RunSummary:
    path: Path
    label: str
    eval: dict
    desc: dict
    records: list[dict]
    curves: list[dict] = field(default_factory=list)


@dataclass
class Column:
    metric: str
    unit: str
    protocol: dict
    values: list  # one per run: float or None
    reasons: dict[int, str] = field(default_factory=dict)  # run index -> why its value is null
    shown_fields: dict = field(default_factory=dict)  # the protocol fields that tell this column from its siblings


# --------------------------------------------------------------------------------------------------
# Reading runs


def read_run(path: Path, label: str) -> RunSummary:
    """A run folder's eval.json, run.json and metrics.jsonl; one-line errors for anything missing."""
    path = Path(path)
    if not path.is_dir():
        raise GenzooError(f"{path}: no such run folder")
    if not (path / RUN_JSON).is_file() and not (path / CHECKPOINT).is_file():
        raise GenzooError(f"{path}: not a genzoo run folder (no run.json or checkpoint.pt)")
    ev_path = path / EVAL_JSON
    if not ev_path.exists():
        raise GenzooError(f"{path}: no eval.json; run `genzoo eval {path}` first")
    ev = read_json(ev_path, "eval.json")
    records = check_eval(ev, ev_path)
    desc = {}
    if (path / RUN_JSON).exists():
        desc = read_json(path / RUN_JSON, "run.json")
        check_run_description(desc, path / RUN_JSON)
    return RunSummary(path, label, ev, desc, records, read_curves(path / METRICS))


def _expect(ok: bool, path: Path, key: str, value, expected: str) -> None:
    if not ok:
        raise GenzooError(f"{path}: {key} must be {expected}, got {json_kind(value)}")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_eval(ev: dict, path: Path) -> list[dict]:
    """The metric records of an eval.json object, every key ``genzoo compare`` reads checked.

    Each record is ``{"metric": str, "value": number or null, "unit": str, "protocol": object}``
    (a null value may carry a ``"reason"`` string). A record whose protocol lacks ``data`` (written
    before the data identity was recorded) gets the file's ``data`` spec, so runs on different data
    never share a column.
    """
    for key in ("model", "family", "data", "split", "checkpoint"):
        if key in ev:
            _expect(isinstance(ev[key], str), path, key, ev[key], "a string")
    if "checkpoint_step" in ev:
        step = ev["checkpoint_step"]
        _expect(
            isinstance(step, int) and not isinstance(step, bool) and step >= 0,
            path,
            "checkpoint_step",
            step,
            "an integer >= 0",
        )
    if "metrics" not in ev:
        raise GenzooError(f"{path}: no metric records (key 'metrics'); run `genzoo eval {path.parent}` again")
    records = ev["metrics"]
    _expect(isinstance(records, list), path, "metrics", records, "a list of metric records")
    out = []
    for i, r in enumerate(records):
        where = f"metrics[{i}]"
        _expect(isinstance(r, dict), path, where, r, "an object with metric, value, unit and protocol")
        missing = [k for k in ("metric", "value", "unit", "protocol") if k not in r]
        if missing:
            raise GenzooError(f"{path}: {where} lacks the key {missing[0]!r}")
        for key in ("metric", "unit"):
            _expect(isinstance(r[key], str), path, f"{where}.{key}", r[key], "a string")
        _expect(
            r["value"] is None or _is_number(r["value"]), path, f"{where}.value", r["value"], "a finite number or null"
        )
        _expect(isinstance(r["protocol"], dict), path, f"{where}.protocol", r["protocol"], "an object")
        if "reason" in r:
            _expect(isinstance(r["reason"], str), path, f"{where}.reason", r["reason"], "a string")
        protocol = dict(r["protocol"])
        if "data" not in protocol and isinstance(ev.get("data"), str):
            protocol["data"] = ev["data"]
        out.append({**r, "protocol": protocol})
    return out


def check_run_description(desc: dict, path: Path) -> None:
    """The keys of run.json that ``genzoo compare`` reads: ``model_name`` and ``data.spec``."""
    if "model_name" in desc:
        _expect(isinstance(desc["model_name"], str), path, "model_name", desc["model_name"], "a string")
    if "data" in desc:
        data = desc["data"]
        _expect(isinstance(data, dict), path, "data", data, "an object with spec, options and info")
        if "spec" in data:
            _expect(isinstance(data["spec"], str), path, "data.spec", data["spec"], "a string")


def read_curves(path: Path) -> list[dict]:
    """The logged rows of metrics.jsonl (unreadable lines are skipped: the log may be cut mid-line)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(row, dict) and _is_number(row.get("step")):
            rows.append(row)
    return rows


def run_labels(paths: list[Path]) -> list[str]:
    """Short unique names: the folder name, with parents added until the names differ."""
    parts = [Path(p).resolve().parts for p in paths]
    depth = 1
    while depth < max(len(p) for p in parts):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
        depth += 1
    return [str(Path(p)) for p in paths]


# --------------------------------------------------------------------------------------------------
# The metric table


def _canon(protocol: dict) -> str:
    return json.dumps(protocol, sort_keys=True, default=str)


def metric_columns(records_per_run: list[list[dict]]) -> tuple[list[Column], list[str]]:
    """Columns of the metric table and the "not comparable" notes.

    One column per distinct (metric, unit, protocol); (metric, unit) pairs in order of first
    appearance, each pair's protocol variants next to one another. For a (metric, unit) with
    several protocols, each column gets the fields that differ among them; when the runs holding
    one protocol are not the runs holding another, a note names the fields (one note per set of
    differing fields, listing every metric they split).
    """
    cols: dict[tuple[str, str, str], Column] = {}
    n_runs = len(records_per_run)
    for i, records in enumerate(records_per_run):
        for r in records:
            key = (str(r["metric"]), str(r["unit"]), _canon(r["protocol"]))
            col = cols.setdefault(key, Column(key[0], key[1], dict(r["protocol"]), [None] * n_runs))
            if col.values[i] is None:
                col.values[i] = r["value"]
                if r["value"] is None and isinstance(r.get("reason"), str):
                    col.reasons[i] = r["reason"]
    families: dict[tuple[str, str], list[Column]] = {}
    for col in cols.values():
        families.setdefault((col.metric, col.unit), []).append(col)
    mismatches: dict[str, list[str]] = {}  # differing fields -> the metrics they split
    for (metric, unit), group in families.items():
        if len(group) < 2:
            continue
        keys = sorted(set().union(*(c.protocol for c in group)))
        differing = [k for k in keys if len({_canon({"v": c.protocol.get(k, "-")}) for c in group}) > 1]
        for c in group:
            c.shown_fields = {k: c.protocol.get(k, "-") for k in differing}
        holders = {tuple(v is not None for v in c.values) for c in group}
        if len(holders) > 1:  # different runs behind different protocols: the comparison a reader wants
            detail = "; ".join(
                f"{k}: " + " vs ".join(dict.fromkeys(_short(c.protocol.get(k, "-")) for c in group)) for k in differing
            )
            mismatches.setdefault(detail, []).append(f"{metric} [{unit}]")
    notes = [
        f"not comparable: {', '.join(names)} {'was' if len(names) == 1 else 'were'} measured under different "
        f"protocols ({detail}); these numbers are in separate columns"
        for detail, names in mismatches.items()
    ]
    return [c for group in families.values() for c in group], notes  # a metric's protocol variants side by side


def _short(v) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str)
    return s if len(s) <= 60 else s[:57] + "..."


def fmt_value(v) -> str:
    if v is None:
        return "&mdash;"
    if isinstance(v, float) and not math.isfinite(v):
        return html.escape(str(v))
    v = float(v)
    return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"


# --------------------------------------------------------------------------------------------------
# Pictures


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def latest_sample_grid(path: Path) -> Path | None:
    grids = sorted((path / "samples").glob("step_*.png")) if (path / "samples").is_dir() else []
    return grids[-1] if grids else None


def draw_samples(
    path: Path, device: str = "cpu", seed: int = 0, n: int = GENERATED_SAMPLES
) -> tuple[bytes | None, str]:
    """A fresh sample grid of the run's model (PNG bytes), or None and why not (shown on the page)."""

    try:
        run = load_run(path, device)
        if not isinstance(run.model, GenerativeModel):
            return None, f"no samples: {run.model_name} does not generate images"
        g = torch.Generator(device=run.model.device).manual_seed(seed)
        with torch.no_grad():
            x = run.model.sample(n, generator=g, condition=run.model.default_condition(n))
        picture = sample_picture(x, run.data()) if run.info.continuous else grid(run.info.to_rgb(x))
    except GenzooError as e:
        return None, f"no samples: {e}"
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return buf.getvalue(), f"{n} samples drawn for this report (seed {seed}, step {run.step})"


def loss_keys(rows: list[dict]) -> list[str]:
    """Logged loss keys: ``loss``, ``<player>/loss`` and held-out ``<split>_bits_per_dim``, in log order."""
    keys: dict[str, None] = {}
    for row in rows:
        for k, v in row.items():
            if (
                isinstance(v, (int, float))
                and not isinstance(v, bool)
                and (k == "loss" or k.endswith("/loss") or (k.endswith("_bits_per_dim") and k != "bits_per_dim"))
            ):
                keys.setdefault(k)
    return list(keys)


def curve_png(rows: list[dict], title: str) -> bytes | None:
    """One panel per loss key against the step (matplotlib, Agg canvas), as PNG bytes; None if nothing logged."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = loss_keys(rows)
    if not keys:
        return None
    fig = Figure(figsize=(3.4 * len(keys), 2.8), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        steps, values = zip(*pts) if pts else ((), ())
        ax.plot(steps, values, marker="." if len(pts) < 30 else None, linewidth=1.2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# HTML

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td.name, th.name { text-align: left; }
.scroll { overflow-x: auto; }
.unit, .proto { display: block; font-weight: normal; color: #555; font-size: 0.85em; }
.proto { color: #a33; }
.note { background: #fff3e0; border-left: 4px solid #e65100; padding: 4px 8px; margin: 4px 0; }
.runs { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 0.8em; color: #444; max-width: 40em; }
img { image-rendering: pixelated; max-width: 100%; }
details { font-size: 0.8em; margin-top: 0.6em; } code { font-size: 0.95em; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  document.body.dataset.imagesOk = ok + "/" + imgs.length;
});
"""


def _e(s) -> str:
    return html.escape(str(s), quote=True)


def _figure(png: bytes, caption: str, alt: str) -> str:
    return f'<figure><img src="{data_uri(png)}" alt="{_e(alt)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _runs_table(runs: list[RunSummary]) -> str:
    rows = []
    for r in runs:
        ev = r.eval
        rows.append(
            "<tr>"
            + "".join(
                f'<td class="name">{c}</td>'
                for c in (
                    _e(r.label),
                    _e(ev.get("model", r.desc.get("model_name", "?"))),
                    _e(ev.get("family", "?")),
                    _e(ev.get("data", r.desc.get("data", {}).get("spec", "?"))),
                    _e(ev.get("checkpoint_step", "?")),
                    _e(ev.get("split", "?")),
                    f"<code>{_e(r.path)}</code>",
                )
            )
            + "</tr>"
        )
    head = "".join(
        f'<th class="name">{h}</th>'
        for h in ("run", "model", "family", "data", "checkpoint step", "eval split", "folder")
    )
    return f'<table id="run-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _metric_table(runs: list[RunSummary], cols: list[Column]) -> str:
    head = ['<th class="name">run</th>']
    for i, c in enumerate(cols):
        proto = "".join(f'<span class="proto">{_e(k)}={_e(_short(v))}</span>' for k, v in c.shown_fields.items())
        head.append(
            f'<th title="{_e(_canon(c.protocol))}">{_e(c.metric)} <sup>[{i + 1}]</sup>'
            f'<span class="unit">{_e(c.unit)}</span>{proto}</th>'
        )
    body = []
    for j, r in enumerate(runs):
        cells = "".join(
            f'<td title="{_e(c.reasons[j])}">{fmt_value(c.values[j])}</td>'
            if j in c.reasons
            else f"<td>{fmt_value(c.values[j])}</td>"
            for c in cols
        )
        body.append(f'<tr><td class="name">{_e(r.label)}</td>{cells}</tr>')
    legend = "".join(
        f"<li>[{i + 1}] <b>{_e(c.metric)}</b> [{_e(c.unit)}]: "
        + ", ".join(f"{_e(k)}={_e(_short(v))}" for k, v in sorted(c.protocol.items()))
        + "</li>"
        for i, c in enumerate(cols)
    )
    return (
        f'<div class="scroll"><table id="metric-table"><thead><tr>{"".join(head)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
        f"<details><summary>full protocol of each column</summary><ol>{legend}</ol></details>"
    )


def _pictures(r: RunSummary, device: str) -> tuple[str, str]:
    """(sample grid figure, other figures) HTML for one run."""
    grid_path = latest_sample_grid(r.path)
    if grid_path is not None:
        samples = _figure(grid_path.read_bytes(), f"{r.label}: samples/{grid_path.name}", f"samples of {r.label}")
    else:
        png, caption = draw_samples(r.path, device)
        samples = (
            _figure(png, f"{r.label}: {caption}", f"samples of {r.label}")
            if png
            else (f"<p>{_e(r.label)}: {_e(caption)}</p>")
        )
    figs = []
    for p in sorted(r.path.glob("*.png")):
        if p.stat().st_size > MAX_EMBED_BYTES:
            figs.append(f"<p>{_e(r.label)}: {_e(p.name)} is too large to embed ({p.stat().st_size >> 20} MiB)</p>")
        else:
            figs.append(_figure(p.read_bytes(), f"{r.label}: {p.name}", p.stem))
    return samples, "".join(figs) or f"<p>{_e(r.label)}: no other pictures in the run folder</p>"


def render(runs: list[RunSummary], device: str = "cpu") -> str:
    cols, notes = metric_columns([r.records for r in runs])
    note_html = "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
    samples, figures, curves = [], [], []
    for r in runs:
        s, f = _pictures(r, device)
        samples.append(f"<div>{s}</div>")
        figures.append(f"<div><h3>{_e(r.label)}</h3>{f}</div>")
        png = curve_png(r.curves, r.label)
        curves.append(
            f"<div>{_figure(png, f'{r.label}: metrics.jsonl', f'training curves of {r.label}')}</div>"
            if png
            else f"<div><p>{_e(r.label)}: no training log (metrics.jsonl)</p></div>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>genzoo compare: {_e(", ".join(r.label for r in runs))}</title>
<style>{STYLE}</style></head>
<body data-images-ok="pending">
<h1>genzoo compare: {len(runs)} run{"s" if len(runs) != 1 else ""}</h1>
<p>Written by genzoo {_e(__version__)}. Numbers share a column only when metric, unit and protocol agree.</p>
<section id="runs"><h2>Runs</h2>{_runs_table(runs)}</section>
<section id="metrics"><h2>Metrics (from RUN/eval.json)</h2>{note_html}{_metric_table(runs, cols)}</section>
<section id="samples"><h2>Samples</h2><div class="runs">{"".join(samples)}</div></section>
<section id="figures"><h2>Figures in the run folders</h2><div class="runs">{"".join(figures)}</div></section>
<section id="curves"><h2>Training curves (RUN/metrics.jsonl)</h2><div class="runs">{"".join(curves)}</div></section>
<script>{SCRIPT}</script>
</body></html>
"""


def build_report(run_dirs, out_path, *, device: str = "cpu") -> Path:
    """Write the comparison page of ``run_dirs`` to ``out_path`` (atomically); returns the path."""

    run_dirs = [Path(d) for d in run_dirs]
    out_path = Path(out_path)
    if not run_dirs:
        raise GenzooError("compare: name at least one run folder")
    if out_path.suffix.lower() not in (".html", ".htm"):
        raise GenzooError(f"-o {out_path}: the report is an .html file")
    runs = [read_run(d, label) for d, label in zip(run_dirs, run_labels(run_dirs))]
    page = render(runs, device).encode("ascii", "xmlcharrefreplace").decode("ascii")  # any locale reads it
    atomic_write_text(out_path, page)
    return out_path
