"""Pure table assembly for the ablation and cold-start reports (unit-tested; no TensorFlow)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from core.ap import average_precision
from core.fields import POPULARITY_BUCKETS, popularity_bucket
from models.config import PRESET_HELP

BASELINE = "promotions_baseline"


def row_label(name: str) -> str:
    """A readable row name: the preset's description; `<preset>_untuned` is that preset with its own
    (the seed's) hyperparameters when the other rows are tuned."""
    if name.endswith("_untuned") and name[:-len("_untuned")] in PRESET_HELP:
        return PRESET_HELP[name[:-len("_untuned")]] + ", untuned (the seed's fixed recipe)"
    return PRESET_HELP.get(name, name)
TOP_FRACTION = 0.10


def _stats(values: Sequence[float]) -> Dict:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(np.nanmean(arr)), "std": float(np.nanstd(arr, ddof=1)) if arr.size > 1 else 0.0,
            "runs": [float(v) for v in arr]}


def _rel(value: float, base: Optional[float]) -> Optional[float]:
    if base is None or not np.isfinite(base) or base == 0:
        return None
    return float(value / base - 1.0)


def ablation_table(runs: Dict[str, List[Dict[str, float]]], oracle: Optional[Dict[str, float]] = None) -> Dict:
    """runs: {preset: [{"promotions": ap, "ads": ap} per seed]} -> the ablation.json structure."""
    variants = {}
    for name, per_seed in runs.items():
        variants[name] = {"promotions_ap": _stats([r["promotions"] for r in per_seed]),
                          "ads_ap": _stats([r["ads"] for r in per_seed])}
    base = variants.get(BASELINE)
    for v in variants.values():
        v["rel_promotions"] = _rel(v["promotions_ap"]["mean"], base and base["promotions_ap"]["mean"])
        v["rel_ads"] = _rel(v["ads_ap"]["mean"], base and base["ads_ap"]["mean"])
    oracle = oracle or {}
    return {"variants": variants,
            "oracle": {"promotions_ap": oracle.get("promotions"), "ads_ap": oracle.get("ads")}}


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:+.1%}"


def ablation_markdown(table: Dict) -> str:
    lines = ["| model | promotions AP | vs baseline | ads AP | vs baseline |", "|---|---|---|---|---|"]
    for name, v in table["variants"].items():
        p, a = v["promotions_ap"], v["ads_ap"]
        lines.append(f"| {row_label(name)} (`{name}`) | {p['mean']:.4f} ± {p['std']:.4f} | "
                     f"{_pct(v['rel_promotions'])} | {a['mean']:.4f} ± {a['std']:.4f} | {_pct(v['rel_ads'])} |")
    o = table["oracle"]
    if o.get("promotions_ap") is not None:
        lines.append(f"| oracle (true probability) | {o['promotions_ap']:.4f} | | {o['ads_ap']:.4f} | |")
    return "\n".join(lines) + "\n"


def top_fraction_rate(labels, scores, fraction: float = TOP_FRACTION) -> float:
    """Stream rate among the `fraction` highest-scored impressions."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    if labels.size == 0:
        return float("nan")
    k = max(1, int(round(fraction * labels.size)))
    top = np.argsort(-scores, kind="mergesort")[:k]
    return float(labels[top].mean())


def cold_start_table(scored: Dict[str, List[Dict]], sources: Sequence[str], models: Sequence[str]) -> List[Dict]:
    """scored: {preset: [{source: {"labels", "scores", "prior"} arrays} per seed]}.

    One row per (source, popularity bucket): impressions, positives, AP per model (mean over
    seeds), unified's relative gain over each other model, and each model's top-10% stream rate.
    """
    rows = []
    any_model = next(iter(scored.values()))[0]
    for source in sources:
        prior = np.asarray(any_model[source]["prior"])
        labels = np.asarray(any_model[source]["labels"])
        buckets = np.array([popularity_bucket(int(p)) for p in prior])
        for bucket, _ in POPULARITY_BUCKETS:
            rows_in = buckets == bucket
            if not rows_in.any():
                continue
            row = {"source": source, "bucket": bucket, "impressions": int(rows_in.sum()),
                   "positives": int(labels[rows_in].sum()), "ap": {}, "top10_stream_rate": {}}
            for m in models:
                if m not in scored:
                    continue
                aps, rates = [], []
                for seed_run in scored[m]:
                    s = seed_run[source]
                    sel = np.asarray(s["scores"])[rows_in]
                    aps.append(average_precision(labels[rows_in], sel) if labels[rows_in].any() else float("nan"))
                    rates.append(top_fraction_rate(labels[rows_in], sel))
                row["ap"][m] = float(np.nanmean(aps)) if np.isfinite(aps).any() else None
                row["top10_stream_rate"][m] = float(np.mean(rates))
            if "unified" in row["ap"]:
                row["unified_gain"] = {m: _rel(row["ap"]["unified"], v) if row["ap"]["unified"] is not None else None
                                       for m, v in row["ap"].items() if m != "unified"}
            rows.append(row)
    return rows


def cold_start_markdown(rows: List[Dict], models: Sequence[str]) -> str:
    present = [m for m in models if rows and m in rows[0]["ap"]]
    head = (["source", "popularity bucket", "impressions", "positives"] + [f"AP {m}" for m in present]
            + [f"unified vs {m}" for m in present if m != "unified"] + [f"top-10% stream rate {m}" for m in present])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["source"], r["bucket"], f"{r['impressions']:,}", f"{r['positives']:,}"]
        cells += ["n/a" if r["ap"][m] is None else f"{r['ap'][m]:.4f}" for m in present]
        cells += [_pct(r.get("unified_gain", {}).get(m)) for m in present if m != "unified"]
        cells += [f"{r['top10_stream_rate'][m]:.2%}" for m in present]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
