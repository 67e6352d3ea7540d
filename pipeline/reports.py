"""Reports a person can read, written into the run root after every run from its summary:

- `statistics.html`: TFDV's Facets Overview of the train split against the test split;
- `report.md`: splits, anomalies, per-source test AP of the candidate (and of the baseline when
  the summary or the Evaluator output has it), the blessing decision and the pushed version.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

from core.fields import SOURCES
from pipeline.run_root import Node, RunRoot
from pipeline.run_summary import RunSummary


def _artifact(summary: RunSummary, component: str, kind: str) -> Optional[str]:
    return summary.artifacts.get(component, {}).get(kind)


def write_statistics_html(stats_uri: str, path: str, lhs: str = "train", rhs: str = "test") -> Optional[str]:
    """The Facets Overview page of split `lhs` against `rhs` (TFDV's own HTML); None without stats."""
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.utils import display_util

    def load(split):
        f = os.path.join(stats_uri, f"Split-{split}", "FeatureStats.pb")
        return tfdv.load_stats_binary(f) if os.path.exists(f) else None

    left, right = load(lhs), load(rhs)
    if left is None:
        return None
    body = display_util.get_statistics_html(lhs_statistics=left, rhs_statistics=right, lhs_name=lhs,
                                            rhs_name=rhs if right is not None else "rhs_statistics")
    with open(path, "w") as f:
        f.write("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>podcast-mtl statistics: "
                f"{lhs} vs {rhs}</title></head>\n<body>\n{body}\n</body></html>\n")
    return path


def anomalies(summary: RunSummary) -> Optional[List[str]]:
    """One line per anomaly in any split (ExampleValidator's output); None when it did not run."""
    uri = _artifact(summary, Node.VALIDATOR, "ExampleAnomalies")
    if not uri:
        return None
    from components.validation_gate import describe_anomalies

    splits = sorted(d[len("Split-"):] for d in os.listdir(uri) if d.startswith("Split-")) if os.path.isdir(uri) else []
    return describe_anomalies(uri, splits)


def write_reliability_diagrams(root: str, summary: RunSummary) -> Dict[str, str]:
    """One PNG per source (`reliability-<source>.png`): observed stream rate against mean predicted
    probability per CalibrationPlot bucket, the diagonal for reference. Needs matplotlib; none without."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    out = {}
    for source, heads in summary.calibration.items():
        for head, c in heads.items():
            points = [(p / n, y / n, n) for _, n, p, y in c.get("buckets") or [] if n > 0]
            if not points:
                continue
            fig, ax = plt.subplots(figsize=(4, 4))
            top = max(max(x for x, _, _ in points), max(y for _, y, _ in points)) * 1.1
            ax.plot([0, top], [0, top], color="grey", lw=1)
            ax.plot([x for x, _, _ in points], [y for _, y, _ in points], marker="o")
            ax.set_xlabel(f"mean predicted stream probability ({head})")
            ax.set_ylabel("observed stream rate")
            ece = c.get("ece")
            ax.set_title(f"{source}: ECE {ece:.4f}" if ece is not None else source)
            path = os.path.join(root, f"reliability-{source}.png")
            fig.tight_layout()
            fig.savefig(path, dpi=80)
            plt.close(fig)
            out[source] = path
    return out


def report_markdown(summary: RunSummary, statistics_page: Optional[str] = None,
                    reliability_pngs: Optional[Dict[str, str]] = None) -> str:
    reliability_pngs = reliability_pngs or {}
    lines = ["# podcast-mtl run report", ""]
    if summary.preset:
        lines.append(f"Preset `{summary.preset}`; wall time {summary.wall_seconds:.0f} s; "
                     f"full log `{summary.log}`.")
        lines.append("")
    lines += ["## Splits", ""]
    splits = summary.splits
    if splits:
        lines += ["| split | impressions |", "|---|---|"] + [f"| {k} | {v:,} |" for k, v in splits.items()]
    else:
        lines.append("No statistics (the run stopped before StatisticsGen).")
    if statistics_page:
        lines += ["", f"Feature statistics, train vs test: [{os.path.basename(statistics_page)}]"
                      f"({os.path.basename(statistics_page)}) (TFDV Facets Overview)."]
    lines += ["", "## Anomalies", ""]
    found = anomalies(summary)
    if found is None:
        lines.append("ExampleValidator did not run.")
    elif found:
        lines += [f"- {line}" for line in found]
    else:
        lines.append("None: every split matches the schema.")
    lines += ["", "## Test exact AP per source", ""]
    candidate = summary.ap
    baseline = summary.baseline or {}
    base = baseline.get("ap") or {}
    heads = sorted({h for s in candidate.values() for h in s})
    if heads:
        lines += ["| source | head | candidate | baseline |", "|---|---|---|---|"]
        for source in SOURCES:
            for head in heads:
                c = candidate.get(source, {}).get(head)
                b = base.get(source, {}).get(head)
                if c is None and b is None:
                    continue
                lines.append(f"| {source} | {head} | {'' if c is None else f'{c:.4f}'} | "
                             f"{'-' if b is None else f'{b:.4f}'} |")
        if baseline:
            lines += ["", f"Baseline: {baseline['kind']} (`{baseline['model']}`)."]
        else:
            lines += ["", "No baseline model was evaluated."]
    else:
        lines.append("No evaluation (the run stopped before the Evaluator).")
    lines += ["", "## Calibration per source (test split, candidate)", ""]
    calibration = summary.calibration
    rows = [(source, head, c) for source in SOURCES for head, c in (calibration.get(source) or {}).items()]
    if rows:
        lines += ["| source | head | mean prediction | mean label | mean prediction / mean label | ECE (10 buckets) |",
                  "|---|---|---|---|---|---|"]
        for source, head, c in rows:
            cells = [c.get(k) for k in ("mean_prediction", "mean_label", "calibration", "ece")]
            lines.append(f"| {source} | {head} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in cells) + " |")
            if reliability_pngs.get(source):
                lines.append("")
                lines.append(f"![reliability diagram, {source}]({os.path.basename(reliability_pngs[source])})")
                lines.append("")
    else:
        lines.append("No calibration measured (the run stopped before the Evaluator).")
    lines += ["", "## Decision", ""]
    lines.append(f"Blessed: **{'yes' if summary.blessed else 'no'}**.")
    pushed = summary.pushed_model
    if pushed:
        lines.append(f"Pushed version **{os.path.basename(pushed.rstrip('/'))}** to `{pushed}`.")
    else:
        lines.append("Not pushed" + (f": {summary.not_pushed_reason}" if summary.not_pushed_reason else "."))
    return "\n".join(lines) + "\n"


def write_reports(root: str, summary: RunSummary) -> Dict[str, str]:
    """Writes `statistics.html` (when the run has statistics) and `report.md` into `root`."""
    written = {}
    run_root = RunRoot(root)
    stats = _artifact(summary, Node.STATISTICS, "ExampleStatistics")
    page = write_statistics_html(stats, run_root.statistics_html) if stats else None
    if page:
        written["statistics"] = page
    elif os.path.exists(run_root.statistics_html):  # an earlier run's page would mislead
        os.remove(run_root.statistics_html)
    pngs = write_reliability_diagrams(root, summary)
    written.update({f"reliability-{s}": p for s, p in pngs.items()})
    path = run_root.report_md
    with open(path, "w") as f:
        f.write(report_markdown(summary, written.get("statistics"), pngs))
    written["report"] = path
    return written
