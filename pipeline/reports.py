"""Reports a person can read, written into the run root after every run from its summary and its
artifacts (`pipeline/report_facts.py` reads them):

- `report.html`: one self-contained page (figures embedded as base64 PNG, inline CSS, no script,
  no network) with every section of `SECTIONS`: the run, splits with counts per source, anomalies,
  the gate's decision (floors, tolerance, gating head and relative change per source), the
  baseline, the tuning trials, AP per source x popularity bucket for candidate and baseline with
  counts, calibration, training curves per head, and feature statistics of train / eval / test
  (distributions, missing rates, the largest drifts) drawn from TFDV's statistics protos;
- `report.md`: its plain-text twin, the same facts as tables, without the figures.

TFDV's Facets page (`statistics.html`) is no longer written: it loads its scripts from CDNs and is
a blank page offline, and it compared train with test only. A page left by an earlier run is
removed. A section whose facts cannot be read says so; it never stops the other sections.
"""
from __future__ import annotations

import dataclasses
import html
import json
import logging
import os
import re
from typing import Callable, Dict, List, Optional

from core.fields import SOURCES
from core.paths import write_whole
from models.tuning_log import trial_number
from pipeline import report_facts as facts
from pipeline.run_root import Node, RunRoot
from pipeline.run_summary import RunSummary

# (anchor, heading) of every section, in page order; report.md uses the same headings
SECTIONS = (
    ("run", "Run"),
    ("splits", "Splits"),
    ("anomalies", "Anomalies"),
    ("decision", "Gate decision"),
    ("baseline", "Baseline"),
    ("tuning", "Tuning trials"),
    ("slices", "AP per source and popularity bucket"),
    ("calibration", "Calibration"),
    ("curves", "Training curves"),
    ("statistics", "Feature statistics"),
)
HEADING = dict(SECTIONS)

_log = logging.getLogger(__name__)


def anomalies(summary: RunSummary) -> Optional[List[str]]:
    """One line per anomaly in any split (ExampleValidator's output); None when it did not run."""
    uri = facts.artifact(summary, Node.VALIDATOR, "ExampleAnomalies")
    if not uri:
        return None
    from components.validation_gate import describe_anomalies

    splits = sorted(d[len("Split-"):] for d in os.listdir(uri) if d.startswith("Split-")) if os.path.isdir(uri) else []
    return describe_anomalies(uri, splits)


@dataclasses.dataclass
class Facts:
    """Everything the two reports show, read once. A fact that could not be read is None and its
    error is in `errors` (section anchor -> message)."""
    summary: RunSummary
    splits: List[Dict]
    anomalies: Optional[List[str]] = None
    gate: Optional[Dict] = None
    tuning: Optional[Dict] = None
    slices: Optional[Dict] = None
    curves: Dict = dataclasses.field(default_factory=dict)
    stats: Dict = dataclasses.field(default_factory=dict)
    features: List[Dict] = dataclasses.field(default_factory=list)
    drifts: List[Dict] = dataclasses.field(default_factory=list)
    tensorboard: List[str] = dataclasses.field(default_factory=list)
    model_card: Optional[str] = None
    errors: Dict[str, str] = dataclasses.field(default_factory=dict)


def _try(errors: Dict[str, str], section: str, fn: Callable, default=None):
    try:
        return fn()
    except Exception as e:  # one unreadable artifact costs its section, not the report
        _log.exception("report section %s", section)
        errors[section] = f"{type(e).__name__}: {e}"
        return default


def gather(summary: RunSummary) -> Facts:
    errors: Dict[str, str] = {}
    stats = _try(errors, "statistics", lambda: facts.load_statistics(summary), {})
    return Facts(
        summary=summary,
        splits=facts.split_table(summary),
        anomalies=_try(errors, "anomalies", lambda: anomalies(summary)),
        gate=_try(errors, "decision", lambda: facts.gate(summary)),
        tuning=_try(errors, "tuning", lambda: facts.tuning(summary)),
        slices=_try(errors, "slices", lambda: facts.slices(summary)),
        curves=_try(errors, "curves", lambda: facts.training_curves(summary), {}),
        stats=stats,
        features=_try(errors, "statistics", lambda: facts.feature_table(stats), []),
        drifts=_try(errors, "statistics", lambda: facts.drifts(stats), []),
        tensorboard=_try(errors, "curves", lambda: facts.tensorboard_logdirs(summary), []),
        model_card=_model_card_path(summary),
        errors=errors,
    )


def _model_card_path(summary: RunSummary) -> Optional[str]:
    from models.model_card import model_card_paths

    md = model_card_paths(summary.pushed_model)[0] if summary.pushed_model else None
    return md if md and os.path.exists(md) else None


# ------------------------------------------------------------------ formatting helpers


def _f(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _n(value) -> str:
    return "-" if value is None else f"{int(value):,}"


def _pct(value) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _yes(value) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _values(values: Optional[Dict]) -> str:
    return ", ".join(f"{k}={v}" for k, v in (values or {}).items()) or "-"


def _mix(values: Optional[Dict]) -> str:
    return " (natural mix)" if values and values.get("source_alpha") == 1.0 else ""


# ------------------------------------------------------------------ tables, shared by both reports
# Each returns (header, rows) or None; markdown and HTML render the same tables.

Table = Optional[tuple]


def splits_table(f: Facts) -> Table:
    if not f.splits:
        return None
    header = ["split", "examples"] + [f"{s}" for s in SOURCES] + [f"{s} stream positives" for s in SOURCES]
    rows = [[r["split"], _n(r["examples"])] + [_n(r["by_source"][s]) for s in SOURCES]
            + [_n(r["positives"][s]) for s in SOURCES] for r in f.splits]
    return header, rows


def gate_table(f: Facts) -> Table:
    if not f.gate:
        return None
    header = ["source", "gating head", "floor", "candidate AP", "baseline AP", "relative change",
              "above floor", "within tolerance"]
    rows = [[r["source"], r["head"] or "-", _f(r["floor"]), _f(r["candidate"]), _f(r["baseline"]),
             _pct(r["relative_change"]), _yes(r["passes_floor"]), _yes(r["passes_tolerance"])]
            for r in f.gate["rows"]]
    return header, rows


def ap_table(f: Facts) -> Table:
    s = f.summary
    base = (s.baseline or {}).get("ap") or {}
    heads = sorted({h for v in s.ap.values() for h in v} | {h for v in base.values() for h in v})
    if not heads:
        return None
    rows = []
    for source in SOURCES:
        for head in heads:
            c, b = (s.ap.get(source) or {}).get(head), (base.get(source) or {}).get(head)
            if c is None and b is None:
                continue
            rows.append([source, head, _f(c), _f(b)])
    return ["source", "head", "candidate", "baseline"], rows


def tuning_table(f: Facts) -> Table:
    if not f.tuning or not f.tuning["trials"]:
        return None
    names = []
    for t in f.tuning["trials"]:
        names += [k for k in t["values"] if k not in names]
    header = ["trial", "score"] + names + [f"eval AP {s}" for s in SOURCES] + [f"vs reference {s}" for s in SOURCES]
    best = f.tuning.get("best") or {}
    rows = []
    for t in f.tuning["trials"]:
        is_best = bool(best) and all(t["values"].get(k) == v for k, v in best.items() if k in t["values"])
        rows.append([trial_number(t["trial"]) + (" (best)" if is_best else ""), _f(t.get("score"))]
                    + [str(t["values"].get(k, "-")) for k in names]
                    + [_f((t.get("eval_ap") or {}).get(s)) for s in SOURCES]
                    + [_pct(((t.get("relative_ap") or {}).get(s) or 0) - 1 if (t.get("relative_ap") or {}).get(s)
                            is not None else None) for s in SOURCES])
    return header, rows


def slices_table(f: Facts) -> Table:
    if not f.slices or not f.slices["rows"]:
        return None
    header = ["source", "popularity bucket", "head", "examples", "positives", "candidate AP", "baseline AP", "change"]
    rows = []
    for r in f.slices["rows"]:
        rel = r["candidate"] / r["baseline"] - 1 if r["candidate"] is not None and r["baseline"] else None
        rows.append([r["source"], r["bucket"], r["head"], _n(r["n"]), _n(r["positives"]), _f(r["candidate"]),
                     _f(r["baseline"]), _pct(rel)])
    return header, rows


def calibration_table(f: Facts) -> Table:
    if not f.slices or not f.slices["calibration"]:
        return None
    rows = [["/".join(c["slice"]) or "overall", c["head"] or "-", c["model"], c["metric"], _f(c["value"])]
            for c in f.slices["calibration"]]
    return ["slice", "head", "model", "metric", "value"], rows


def missing_table(f: Facts) -> Table:
    if not f.features:
        return None
    splits = [s for s in ("train", "eval", "test") if s in f.stats]
    header = ["feature", "kind"] + [f"missing {s}" for s in splits] + [f"{s} mean / top value" for s in splits]
    rows = []
    for r in f.features:
        row = [r["feature"], r["kind"] or "-"]
        row += [_pct_plain(r["splits"].get(s, {}).get("missing")) for s in splits]
        for s in splits:
            e = r["splits"].get(s, {})
            row.append(f"{e['mean']:.4g}" if "mean" in e else (str(e.get("top")) if e.get("top") is not None else "-"))
        rows.append(row)
    return header, rows


def _pct_plain(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def drift_table(f: Facts) -> Table:
    if not f.drifts:
        return None
    splits = [s for s in ("eval", "test") if any(s in d["to"] for d in f.drifts)]
    header = ["feature", "distance"] + [f"train -> {s}" for s in splits]
    return header, [[d["feature"], d["measure"]] + [_f(d["to"].get(s), 3) for s in splits] for d in f.drifts]


# ------------------------------------------------------------------ texts shared by both reports


def run_lines(f: Facts, root: str) -> List[str]:
    s = f.summary
    lines = []
    if s.preset:
        lines.append(f"Preset `{s.preset}`; started {s.started or '-'}; wall time {s.wall_seconds:.0f} s; "
                     f"state {s.state}.")
    if s.log:
        lines.append(f"Full log: `{s.log}`.")
    if s.rows:
        r = s.rows
        lines.append(f"Rows: {r.get('rows_read', 0):,} read, {r.get('rows_kept', 0):,} in splits, "
                     f"{r.get('rows_rejected', 0):,} rejected" + (f" {r['rejected']}" if r.get("rejected") else "") + ".")
    if s.tuned_hyperparameters:
        lines.append(f"Tuned hyperparameters{_mix(s.tuned_hyperparameters)}: {_values(s.tuned_hyperparameters)}.")
    lines.append(f"TensorBoard: `tensorboard --logdir {root}` (training curves per head, validation losses, "
                 f"eval AP of every head per source, hyperparameters and tuning trials in the HParams tab).")
    if s.components:
        slow = sorted(s.components, key=lambda c: -c["seconds"])[:3]
        lines.append("Longest components: " + ", ".join(f"{c['component']} {c['seconds']:.0f} s" for c in slow) + ".")
    return lines


def decision_lines(f: Facts) -> List[str]:
    s = f.summary
    lines = [f"Blessed: **{'yes' if s.blessed else 'no'}**."]
    if f.gate:
        tol = f.gate["tolerance"]
        lines.append("Each source is judged on its own test impressions by its gating head: exact AP at or above "
                     "the source's floor" + (f", and at most {tol:.0%} (relative) below the baseline's AP"
                                             if tol is not None else "") + ".")
        for line in f.gate["failures"]:
            lines.append(f"Failed: {line}.")
    if s.pushed_model:
        lines.append(f"Pushed version **{os.path.basename(s.pushed_model.rstrip('/'))}** to `{s.pushed_model}`.")
        if f.model_card:
            lines.append(f"Model card: `{f.model_card}`.")
    else:
        lines.append("Not pushed" + (f": {s.not_pushed_reason}" if s.not_pushed_reason else "."))
    return lines


def baseline_lines(f: Facts) -> List[str]:
    b = f.summary.baseline
    if not b:
        return ["No baseline model was evaluated."]
    return [f"Baseline: {b['kind']} (`{b['model']}`)."]


def tuning_lines(f: Facts) -> List[str]:
    if f.tuning is None:
        return ["No Tuner ran in this run (the model config's own values" +
                (", or an earlier Tuner's best values" if f.summary.tuned_hyperparameters else "") + ")."]
    lines = [f"{len(f.tuning['trials'])} trials; the score is the eval stream AP per source relative to a "
             f"promotions_baseline reference trained with the same budget (models/selection.py)."]
    if f.tuning.get("best"):
        lines.append(f"Best values{_mix(f.tuning['best'])}: {_values(f.tuning['best'])}.")
    if f.tuning.get("tensorboard"):
        lines.append(f"Trials in TensorBoard (HParams): `{f.tuning['tensorboard']}`.")
    return lines


def calibration_lines(f: Facts) -> List[str]:
    if f.slices is None:
        return ["No evaluation (the run stopped before the Evaluator)."]
    if not f.slices["calibration"] and not f.slices.get("plots"):
        return ["Not computed: the Evaluator's config has no calibration metric (TFMA `Calibration`, "
                "`CalibrationPlot`)."]
    lines = []
    for source in SOURCES:  # the gate's view: each source's stream head, ECE from the plot's buckets
        for head, c in (f.summary.calibration.get(source) or {}).items():
            if c.get("calibration") is not None:
                lines.append(f"{source}, {head}: mean prediction / mean label {c['calibration']:.3f}"
                             + (f", expected calibration error {c['ece']:.4f}" if c.get("ece") is not None else "")
                             + " (test split, candidate).")
    return lines


def statistics_lines(f: Facts) -> List[str]:
    if not f.stats:
        return ["No statistics (the run stopped before StatisticsGen)."]
    return [f"TFDV statistics of {', '.join(f'{s} ({ds.num_examples:,} examples)' for s, ds in f.stats.items())}. "
            "Drift: L-infinity distance of the value shares (categorical features, as TFDV's drift comparator) "
            "or Kolmogorov-Smirnov distance of the quantiles (numeric features), from train to each split "
            f"({', '.join(facts.NO_DRIFT)} left out: the splits are cut by it)."]


# ------------------------------------------------------------------ markdown


def _md_table(table: Table) -> List[str]:
    header, rows = table
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def report_markdown(summary: RunSummary, root: str = ".", f: Optional[Facts] = None) -> str:
    f = f or gather(summary)
    lines = ["# podcast-mtl run report", "", "The same report with figures: [report.html](report.html).", ""]

    def section(anchor: str, body: List[str]):
        lines.extend([f"## {HEADING[anchor]}", ""] + body + [""])
        if anchor in f.errors:
            lines.extend([f"(could not read everything for this section: {f.errors[anchor]})", ""])

    section("run", run_lines(f, root))
    section("splits", _md_table(splits_table(f)) if splits_table(f) else
            ["No statistics (the run stopped before StatisticsGen)."])
    found = f.anomalies
    section("anomalies", ["ExampleValidator did not run."] if found is None else
            [f"- {line}" for line in found] if found else ["None: every split matches the schema."])
    gate = gate_table(f)
    section("decision", decision_lines(f) + ([""] + _md_table(gate) if gate else []))
    ap = ap_table(f)
    section("baseline", baseline_lines(f) + ([""] + ["Test exact AP per source and head:", ""] + _md_table(ap)
                                             if ap else ["", "No evaluation (the run stopped before the Evaluator)."]))
    tuning = tuning_table(f)
    section("tuning", tuning_lines(f) + ([""] + _md_table(tuning) if tuning else []))
    sl = slices_table(f)
    section("slices", _md_table(sl) if sl else ["No evaluation (the run stopped before the Evaluator)."])
    cal = calibration_table(f)
    section("calibration", calibration_lines(f) + (_md_table(cal) if cal else []))
    curve_lines = []
    for node, runs in f.curves.items():
        tags = sorted({f"{run}/{tag}" for run, t in runs.items() for tag in t})
        curve_lines.append(f"- {node}: {len(tags)} curves ({', '.join(tags[:8])}{', ...' if len(tags) > 8 else ''}); "
                           "drawn in report.html")
    for d in f.tensorboard:
        curve_lines.append(f"- logs: `{d}`")
    section("curves", curve_lines or ["No training logs (the run stopped before the Trainer)."])
    stats_body = statistics_lines(f)
    drift = drift_table(f)
    if drift:
        stats_body += ["", "Largest drifts:", ""] + _md_table(drift)
    missing = missing_table(f)
    if missing:
        stats_body += ["", "Missing rates and a summary per split:", ""] + _md_table(missing)
    section("statistics", stats_body)
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------ HTML

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 2em 3em 2em; color: #222; }
nav { position: sticky; top: 0; background: #fff; padding: .6em 0; border-bottom: 1px solid #ddd; font-size: 90%; }
nav a { margin-right: 1em; color: #1a5fb4; text-decoration: none; }
h1 { margin-top: .6em; } h2 { border-bottom: 2px solid #1a5fb4; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; font-size: 88%; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #eef3fb; } td:first-child, th:first-child { text-align: left; }
.yes { color: #1c7c2c; font-weight: bold; } .no { color: #b42318; font-weight: bold; }
.grid { display: flex; flex-wrap: wrap; gap: .6em; } .grid img { border: 1px solid #eee; }
td.text { text-align: left; } .note { color: #666; font-size: 90%; } code { background: #f4f4f4; padding: 0 .2em; }
"""


def _md_inline(text: str) -> str:
    """`code` and **bold** of the shared texts as HTML (the rest escaped)."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


def _p(lines: List[str]) -> str:
    return "".join(f"<p>{_md_inline(line)}</p>\n" for line in lines if line)


_NUMBER = re.compile(r"^[-+]?[\d,.]+(e[-+]?\d+)?%?$|^-$")


def _html_table(table: Table) -> str:
    if not table:
        return ""
    header, rows = table

    def cell(c):
        c = str(c)
        cls = ' class="yes"' if c == "yes" else ' class="no"' if c == "no" else \
            "" if _NUMBER.match(c) else ' class="text"'
        return f"<td{cls}>{html.escape(c)}</td>"

    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>\n"
            + "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>\n" for row in rows) + "</table>\n")


def _img(uri: Optional[str], alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">\n' if uri else ""


def _figure(section: str, errors: Dict[str, str], draw: Callable[[], Optional[str]], alt: str) -> str:
    return _img(_try(errors, section, draw), alt)


def report_html(summary: RunSummary, root: str = ".", f: Optional[Facts] = None) -> str:
    from pipeline import report_figures as fig

    f = f or gather(summary)
    s = summary
    parts = []

    def section(anchor: str, body: str):
        err = f"<p class=\"note\">Could not read everything for this section: {html.escape(f.errors[anchor])}</p>" \
            if anchor in f.errors else ""
        parts.append(f'<section id="{anchor}"><h2>{html.escape(HEADING[anchor])}</h2>\n{body}{err}</section>\n')

    section("run", _p(run_lines(f, root)) + _html_table(_components_table(s)))
    section("splits", _html_table(splits_table(f)) or _p(["No statistics (the run stopped before StatisticsGen)."]))
    found = f.anomalies
    section("anomalies", _p(["ExampleValidator did not run."]) if found is None else
            ("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in found) + "</ul>") if found else
            _p(["None: every split matches the schema."]))
    section("decision", _p(decision_lines(f)) + _html_table(gate_table(f)))
    section("baseline", _p(baseline_lines(f)) + (_p(["Test exact AP per source and head:"]) + _html_table(ap_table(f))
                                                  if ap_table(f) else _p(["No evaluation."])))
    section("tuning", _p(tuning_lines(f)) + _html_table(tuning_table(f)))
    slices_body = _html_table(slices_table(f)) or _p(["No evaluation (the run stopped before the Evaluator)."])
    if f.slices and f.gate:
        slices_body = _figure("slices", f.errors, lambda: fig.slice_ap(f.slices["rows"], f.gate["heads"]),
                              "AP per slice, candidate and baseline") + slices_body
    section("slices", _p(["Test exact AP per slice (TFMA), the examples and stream positives in each slice; the "
                          "figure shows each source's gating head."]) + slices_body)
    cal_body = _p(calibration_lines(f)) + _html_table(calibration_table(f))
    if f.slices and f.slices.get("plots"):
        cal_body += _figure("calibration", f.errors, lambda: fig.reliability(f.slices["plots"]), "reliability diagram")
    section("calibration", cal_body)
    curves_body = ""
    for node, runs in f.curves.items():
        curves_body += f"<h3>{html.escape(node)}</h3>\n" + _figure("curves", f.errors, lambda r=runs, n=node:
                                                                  fig.curves(r, n), f"training curves of {node}")
    if f.tensorboard:
        curves_body += _p(["TensorBoard logs: " + ", ".join(f"`{d}`" for d in f.tensorboard)])
    section("curves", curves_body or _p(["No training logs (the run stopped before the Trainer)."]))
    stats_body = _p(statistics_lines(f))
    if f.stats:
        stats_body += "<h3>Largest drifts</h3>\n" + (_html_table(drift_table(f)) or _p(["None computed."]))
        stats_body += "<h3>Missing rates</h3>\n" + _figure("statistics", f.errors, lambda: fig.missing_rates(f.features),
                                                           "missing rates per feature and split")
        stats_body += "<h3>Distributions</h3>\n<div class=\"grid\">" + "".join(
            _figure("statistics", f.errors, lambda name=r["feature"]: fig.feature(name, _by_split(f.stats, name)),
                    f"distribution of {r['feature']}") for r in _plotted(f)) + "</div>\n"
        stats_body += "<h3>Per feature</h3>\n" + _html_table(missing_table(f))
    section("statistics", stats_body)
    nav = "".join(f'<a href="#{a}">{html.escape(h)}</a>' for a, h in SECTIONS)
    title = f"podcast-mtl run report: {s.preset or 'run'} {s.started or ''}".strip()
    blessed = '<span class="yes">blessed</span>' if s.blessed else '<span class="no">not blessed</span>'
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style></head>\n<body>\n"
            f"<nav>{nav}</nav>\n<h1>podcast-mtl run report</h1>\n"
            f"<p>{html.escape(root)}: {blessed}; " + (f"pushed version <b>{html.escape(os.path.basename(s.pushed_model))}"
                                                     "</b>" if s.pushed_model else "not pushed") + "</p>\n"
            + "".join(parts) + "</body></html>\n")


def _components_table(s: RunSummary) -> Table:
    if not s.components:
        return None
    return ["component", "state", "seconds"], [[c["component"], c["state"], f"{c['seconds']:.1f}"] for c in s.components]


def _by_split(stats: Dict, name: str) -> Dict:
    out = {}
    for split, ds in stats.items():
        for feature in ds.features:
            if facts._name(feature) == name:
                out[split] = feature
    return out


def _plotted(f: Facts) -> List[Dict]:
    """Features drawn: every numeric or categorical feature, the largest drifts first."""
    order = {d["feature"]: i for i, d in enumerate(f.drifts)}
    rows = [r for r in f.features if r["kind"] in ("numeric", "categorical")]
    return sorted(rows, key=lambda r: (order.get(r["feature"], len(order)), r["feature"]))


# ------------------------------------------------------------------ model card


def code_version() -> str:
    """The git commit of the project's checkout ("+dirty" with uncommitted changes), else the
    installed package's version."""
    import subprocess

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode == 0:
            dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            return f"git {commit.stdout.strip()}" + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"podcast-mtl {version('podcast-mtl')}"
    except PackageNotFoundError:
        return "unknown"


def data_window(stats: Dict) -> Dict[str, str]:
    """First and last event time (UTC) of the statistics' splits, from `event_time`'s min and max."""
    lows, highs, by_split = [], [], {}
    for split, ds in stats.items():
        for feature in ds.features:
            if facts._name(feature) == "event_time" and feature.WhichOneof("stats") == "num_stats":
                lo, hi = feature.num_stats.min, feature.num_stats.max
                lows.append(lo)
                highs.append(hi)
                by_split[split] = [_utc(lo), _utc(hi)]
    if not lows:
        return {}
    return {"first": _utc(min(lows)), "last": _utc(max(highs)), "splits": by_split}


def _utc(seconds: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def model_card_fields(summary: RunSummary, f: Facts) -> Dict:
    """The model card of the run's pushed model (models/model_card.py): the Model Card Toolkit's
    groups, filled from the run."""
    from core.serving import SERVING_DEFAULT, SERVING_RAW
    from models.export import read_model_config

    s = summary
    cfg = read_model_config(s.pushed_model) if s.pushed_model else None
    r = s.rows or {}
    base = (s.baseline or {}).get("ap") or {}
    return {
        "model_details": {"name": "podcast-mtl", "version": os.path.basename((s.pushed_model or "").rstrip("/")),
                          "path": s.pushed_model, "code_version": code_version(), "created": s.started,
                          "signatures": [SERVING_DEFAULT, SERVING_RAW]},
        "model_parameters": {
            "preset": s.preset, "mix": cfg.mix_description() if cfg else None,
            "heads": list(cfg.heads) if cfg else [], "train_sources": list(cfg.train_sources) if cfg else [],
            "model_config": json.loads(cfg.to_json()) if cfg else None, "tuned_values": s.tuned_hyperparameters,
            "data": {"location": s.data, "window": data_window(f.stats), "rows_read": r.get("rows_read"),
                     "rows_kept": r.get("rows_kept"), "rows_rejected": r.get("rows_rejected"),
                     "splits": [{"split": x["split"], "examples": x["examples"],
                                 **{f"{src} rows": x["by_source"][src] for src in SOURCES},
                                 **{f"{src} stream positives": x["positives"][src] for src in SOURCES}}
                                for x in f.splits]}},
        "quantitative_analysis": {
            "ap": [{"source": src, "head": head, "candidate": v, "baseline": (base.get(src) or {}).get(head)}
                   for src in SOURCES for head, v in (s.ap.get(src) or {}).items()],
            "slices": [{"source": x["source"], "bucket": x["bucket"], "head": x["head"], "examples": x["n"],
                        "positives": x["positives"], "candidate": x["candidate"], "baseline": x["baseline"]}
                       for x in (f.slices or {}).get("rows", [])],
            "calibration": [{"slice": "/".join(c["slice"]) or "overall", "head": c["head"], "model": c["model"],
                             "metric": c["metric"], "value": c["value"]}
                            for c in (f.slices or {}).get("calibration", [])],
            "calibration_note": " ".join(calibration_lines(f)) or "computed"},
        "considerations": {
            "baseline": f"{s.baseline['kind']} ({s.baseline['model']})" if s.baseline else "none",
            "blessed": s.blessed, "floors": (f.gate or {}).get("floors"), "tolerance": (f.gate or {}).get("tolerance"),
            "gate": [{"source": x["source"], "head": x["head"], "floor": x["floor"], "candidate": x["candidate"],
                      "baseline": x["baseline"], "relative change": x["relative_change"]}
                     for x in (f.gate or {}).get("rows", [])],
            "failures": (f.gate or {}).get("failures", [])},
    }


def write_pushed_model_card(summary: RunSummary, f: Facts) -> Optional[str]:
    """`<version>.model_card.md` / `.json` beside the pushed version's folder; None when nothing was pushed."""
    from models.model_card import write_model_card

    if not summary.pushed_model or not os.path.isdir(summary.pushed_model):
        return None
    md, _ = write_model_card(summary.pushed_model, model_card_fields(summary, f))
    return md


# ------------------------------------------------------------------ writing


def write_reports(root: str, summary: RunSummary) -> Dict[str, str]:
    """Writes the pushed model's card (`model_card_fields`), `report.md` and `report.html` into `root`
    (and removes a `statistics.html` an earlier
    version of the project left there: the statistics are a section of report.html now)."""
    run_root = RunRoot(root)
    f = gather(summary)
    written = {}
    card = _try(f.errors, "decision", lambda: write_pushed_model_card(summary, f))
    if card:
        f.model_card = written["model_card"] = card
    for path, text in ((run_root.report_md, report_markdown(summary, root, f)),
                       (run_root.report_html, report_html(summary, root, f))):
        write_whole(path, text)
    written["report"], written["html"] = run_root.report_md, run_root.report_html
    if os.path.exists(run_root.statistics_html):  # TFDV's Facets page: blank offline, superseded
        os.remove(run_root.statistics_html)
    return written


def facts_json(summary: RunSummary) -> str:
    """The report's facts as JSON (for tests and tools): splits, gate, tuning, slices, drifts."""
    f = gather(summary)
    return json.dumps({"splits": f.splits, "gate": f.gate, "tuning": f.tuning, "slices": f.slices,
                       "drifts": f.drifts, "errors": f.errors}, default=str, indent=1)
