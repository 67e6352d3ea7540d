"""The run report's figures, drawn with matplotlib (Agg, no display) and returned as PNG data URIs
(`data:image/png;base64,...`) so report.html needs no other file and no network."""
from __future__ import annotations

import base64
import io
from typing import Dict, List, Optional, Sequence, Tuple

SPLIT_COLORS = {"train": "#1f77b4", "eval": "#ff7f0e", "test": "#2ca02c"}
MODEL_COLORS = {"candidate": "#1f77b4", "baseline": "#999999"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> str:
    """The figure as a PNG data URI; closes it."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def curves(runs: Dict[str, Dict[str, List[Tuple[int, float]]]], title: str) -> Optional[str]:
    """One panel per tag group (`loss`, `ap`, `stream_ap`, ...): every tag of every run (train solid,
    validation dashed), the training step as the x axis."""
    groups: Dict[str, List[Tuple[str, str, List[Tuple[int, float]]]]] = {}
    for run, tags in runs.items():
        for tag, points in tags.items():
            if tag in ("selected_step",) or tag.startswith("hparams") or len(points) < 1:
                continue
            group = tag.split("/", 1)[0] if "/" in tag else tag.rsplit("_", 1)[0]
            groups.setdefault(group, []).append((run, tag, points))
    if not groups:
        return None
    plt = _plt()
    names = sorted(groups, key=lambda g: (g != "loss", g))
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.6), squeeze=False)
    for ax, group in zip(axes[0], names):
        for run, tag, points in sorted(groups[group], key=lambda x: (x[1], x[0])):
            steps, values = zip(*sorted(points))
            label = tag.split("/", 1)[1] if "/" in tag else tag
            ax.plot(steps, values, "--" if run == "validation" else "-", marker=".", label=f"{label} ({run})")
        ax.set_title(f"{title}: {group}")
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return png(fig)


def slice_ap(rows: Sequence[Dict], heads_by_source: Dict[str, str]) -> Optional[str]:
    """Grouped bars: each source x popularity bucket slice's AP of that source's gating head,
    candidate against baseline."""
    picked = [r for r in rows if r["head"] == heads_by_source.get(r["source"]) and r["source"] != "all"]
    if not picked:
        return None
    plt = _plt()
    labels = [f"{r['source']} {r['bucket']}" for r in picked]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(picked)), 3.6))
    width = 0.4
    for i, model in enumerate(("candidate", "baseline")):
        values = [r[model] if r[model] is not None else 0.0 for r in picked]
        ax.bar([x + (i - 0.5) * width for x in range(len(picked))], values, width, label=model,
               color=MODEL_COLORS[model])
    ax.set_xticks(range(len(picked)))
    ax.set_xticklabels(labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("test exact AP (gating head)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def reliability(plots: Sequence[Dict]) -> Optional[str]:
    """Reliability diagrams: mean label against mean prediction per bucket, one line per head/slice."""
    if not plots:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ":", color="black", label="perfect")
    for p in plots:
        if p["points"]:
            x, y, _ = zip(*p["points"])
            ax.plot(x, y, marker="o", label=f"{p['head']} {'/'.join(p['slice']) or 'overall'}")
    ax.set_xlabel("mean prediction")
    ax.set_ylabel("observed rate")
    ax.legend(fontsize=7)
    return png(fig)


def feature(name: str, by_split: Dict[str, object]) -> Optional[str]:
    """One feature's distribution in each split: equal-width histogram shares (numeric) or the top
    values' shares (categorical)."""
    from pipeline.report_facts import categorical_distribution, numeric_histogram

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 2.6))
    drawn = False
    kinds = {f.WhichOneof("stats") for f in by_split.values()}
    if kinds == {"num_stats"}:
        for split, f in by_split.items():
            hist = numeric_histogram(f)
            total = sum(c for _, _, c in hist) or 1
            if hist:
                lows = [lo for lo, _, _ in hist] + [hist[-1][1]]
                ax.stairs([c / total for _, _, c in hist], lows, label=split, color=SPLIT_COLORS.get(split))
                drawn = True
        ax.set_ylabel("share")
    elif kinds == {"string_stats"}:
        shares = {split: categorical_distribution(f) for split, f in by_split.items()}
        first = next(iter(shares.values()))
        values = list(first)[:8]
        width = 0.8 / max(len(shares), 1)
        for i, (split, dist) in enumerate(shares.items()):
            ax.bar([x + i * width for x in range(len(values))], [dist.get(v, 0.0) for v in values], width,
                   label=split, color=SPLIT_COLORS.get(split))
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(values))])
        ax.set_xticklabels([str(v)[:12] for v in values], rotation=45, ha="right", fontsize=6)
        ax.set_ylabel("share")
        drawn = bool(values)
    if not drawn:
        plt.close(fig)
        return None
    ax.set_title(name, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    return png(fig)


def missing_rates(table: Sequence[Dict]) -> Optional[str]:
    """Horizontal bars: each feature's missing rate per split."""
    rows = [r for r in table if any((e.get("missing") or 0) > 0 for e in r["splits"].values())]
    if not rows:
        return None
    plt = _plt()
    splits = sorted({s for r in rows for s in r["splits"]}, key=lambda s: list(SPLIT_COLORS).index(s)
                    if s in SPLIT_COLORS else 9)
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(rows) * len(splits) / 2 + 1.2))
    height = 0.8 / len(splits)
    for i, split in enumerate(splits):
        ax.barh([y + i * height for y in range(len(rows))],
                [r["splits"].get(split, {}).get("missing") or 0.0 for r in rows], height, label=split,
                color=SPLIT_COLORS.get(split))
    ax.set_yticks([y + 0.4 - height / 2 for y in range(len(rows))])
    ax.set_yticklabels([r["feature"] for r in rows], fontsize=7)
    ax.set_xlabel("missing rate")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    return png(fig)
