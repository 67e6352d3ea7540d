"""`podcast-mtl ablate`: every preset trained on the same ExampleGen and Transform outputs
(computed once, by the real TFX components through the pipeline layer, and cached), scored on
the test split.

Writes ablation.json / .md / .png and cold_start.json / .md / .png into the output folder.
"""
from __future__ import annotations

import json
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from study import tables
from core.fields import SOURCES, TRUTH_PREFIX

COLD_START_MODELS = ("promotions_baseline", "ads_only", "unified")


def oracle_ap(data: str, split) -> Optional[Dict[str, float]]:
    """AP of ranking the test split by the generator's true probability (synthetic logs only)."""
    from core.logs import partition_days, read_logs
    from core.ap import average_precision

    truth = TRUTH_PREFIX + "stream"
    try:
        df = read_logs(data, columns=["event_time", "source", "stream", truth])
    except Exception:  # real logs have no true probability
        return None
    _, bounds = split.resolve(partition_days(data))
    lo, hi = bounds["test"]
    test = df[(df.event_time >= lo) & (df.event_time < hi)]
    return {s: average_precision(test.stream[test.source == s], test[truth][test.source == s]) for s in SOURCES}


UNTUNED = "untuned"  # suffix of the rows trained with a preset's own hyperparameters


def run_ablation(data: Dict, logs: str, split, presets: Sequence[str], seeds: int, out: str,
                 model_overrides: Optional[Dict] = None, tuning=None, progress=print, untuned_row: bool = True) -> Dict:
    """Trains every preset for each seed on one Transform output and scores its test split.

    data: {"graph": Transform graph dir, "files": {split: examples file pattern}}, from the
    pipeline layer's run of ExampleGen .. Transform; `logs` and `split` give the oracle AP.
    With `tuning` (a TuningConfig with trials > 0), every preset is first tuned on validation AP
    with the same budget (the seed's protocol) and trained with its best values; `unified` is also
    trained untuned (the preset's own values, the natural mix), as the row `unified_untuned` (unless
    `untuned_row` is False); the seed's 50/50 batches are the preset `unified_balanced`."""
    import tensorflow as tf

    from models.config import preset
    from models.evaluate import score_dataset, stream_ap_by_source
    from models.sampling import eval_dataset, examples_decoder
    from core.tasks import stream_head
    from models.trainer import train
    from models.tuning import TrialData, tune

    import tensorflow_transform as tft

    os.makedirs(out, exist_ok=True)
    tft_out = tft.TFTransformOutput(data["graph"])
    test_decoder = examples_decoder(tft_out, data["files"]["test"])
    base = preset("unified", **(model_overrides or {}))
    t_all = time.time()
    memory = TrialData.load(tft_out, data["files"]["train"], data["files"]["eval"], base.max_eval_examples)
    progress(f"train and eval splits in memory in {time.time() - t_all:.0f} s: " +
             ", ".join(f"{s} {n:,}" for s, n in memory.counts.items()))
    variants: Dict[str, object] = {}  # row name -> ModelConfig (seed 0)
    tuned: Dict[str, Dict] = {}
    reference = None
    for name in presets:
        cfg = preset(name, **(model_overrides or {}))
        if tuning is not None and tuning.trials > 0:
            if name == "unified" and untuned_row:
                variants[f"{name}_{UNTUNED}"] = cfg
            t0 = time.time()
            progress(f"tuning {name}: {tuning.trials} trials of {tuning.steps} steps ...")
            result = tune(cfg, tuning, memory, os.path.join(out, "tuner", name), reference=reference,
                          progress=progress)
            reference = result["reference"]
            tuned[name] = result
            cfg = cfg.with_hyperparameters(result["values"])
            progress(f"  {name}: best {result['values']} ({time.time() - t0:.0f} s)")
        variants[name] = cfg
    runs: Dict[str, List[Dict[str, float]]] = {}
    scored: Dict[str, List[Dict]] = {}
    total, k = len(variants) * seeds, 0
    for name, cfg0 in variants.items():
        for seed in range(seeds):
            k += 1
            t0 = time.time()
            cfg = cfg0.replace(seed=seed)
            model = train(cfg, tft_out, data["files"]["train"], None, verbose=False, examples=memory.examples,
                          counts=memory.counts, eval_data=memory.eval_batches)
            s = score_dataset(model, eval_dataset(data["files"]["test"], test_decoder))
            ap = stream_ap_by_source(model.task_rows, s)
            runs.setdefault(name, []).append(ap)
            if name in COLD_START_MODELS:
                per_source = {}
                for source in SOURCES:
                    rows = s.rows_of(source)
                    per_source[source] = {"labels": s.labels["stream"][rows],
                                          "scores": s.predictions[stream_head(model.task_rows, source)][rows],
                                          "prior": s.prior_impressions[rows],
                                          "recent": (s.recent_streams[rows] if s.recent_streams is not None
                                                     and len(s.recent_streams) == len(s.source) else None)}
                scored.setdefault(name, []).append(per_source)
            progress(f"[{k}/{total}] {name} seed {seed}: test AP promotions={ap['promotions']:.4f} "
                     f"ads={ap['ads']:.4f} (restored step {model.selected['step']}, {time.time() - t0:.0f} s; "
                     f"{time.time() - t_all:.0f} s so far)")
            tf.keras.backend.clear_session()
    table = tables.ablation_table(runs, oracle_ap(logs, split))
    cold = tables.cold_start_table(scored, SOURCES, COLD_START_MODELS) if scored else []
    write_reports(table, cold, out, meta={"data": logs, "seeds": seeds, "presets": list(presets),
                                          "split": json.loads(split.to_json()),
                                          "model_overrides": model_overrides or {},
                                          "tuning": json.loads(tuning.to_json()) if tuning else None,
                                          "tuned": {n: {"values": r["values"], "trials": r["trials"]}
                                                    for n, r in tuned.items()},
                                          "reference_eval_ap": reference,
                                          "seconds": round(time.time() - t_all)})
    return table


def write_reports(table: Dict, cold: List[Dict], out: str, meta: Dict) -> None:
    with open(os.path.join(out, "ablation.json"), "w") as f:
        json.dump(dict(table, meta=meta), f, indent=1)
    with open(os.path.join(out, "ablation.md"), "w") as f:
        f.write(tables.ablation_markdown(table))
    with open(os.path.join(out, "cold_start.json"), "w") as f:
        json.dump({"rows": cold, "models": list(COLD_START_MODELS), "meta": meta}, f, indent=1)
    with open(os.path.join(out, "cold_start.md"), "w") as f:
        f.write(tables.cold_start_markdown(cold, COLD_START_MODELS) if cold else "no cold-start models were run\n")
    _ablation_chart(table, os.path.join(out, "ablation.png"))
    _cold_start_chart(cold, os.path.join(out, "cold_start.png"))


def _ablation_chart(table: Dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table["variants"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.55 * len(names) + 2.2), sharey=True)
    for ax, key, title in zip(axes, ("promotions_ap", "ads_ap"), ("Promotions AP (test)", "Ads AP (test)")):
        means = [table["variants"][n][key]["mean"] for n in names]
        stds = [table["variants"][n][key]["std"] for n in names]
        colors = ["#1f77b4" if n.startswith("unified") else "#7f7f7f" if n == "pooled_stream_only" else "#ff7f0e"
                  for n in names]
        ax.barh(range(len(names)), means, xerr=stds, color=colors, capsize=3)
        oracle = table["oracle"].get(key)
        if oracle is not None:
            ax.axvline(oracle, color="k", linestyle="--", linewidth=1, label=f"oracle {oracle:.3f}")
            ax.legend(loc="lower right")
        for i, m in enumerate(means):
            ax.text(m, i, f" {m:.3f}", va="center", fontsize=8)
        ax.set_title(title)
        ax.set_xlabel("average precision (mean ± std over seeds)")
    axes[0].set_yticks(range(len(names)))
    axes[0].set_yticklabels([tables.row_label(n) for n in names], fontsize=8)
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cold_start_chart(rows: List[Dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bucketings = [b for b in tables.BUCKETINGS if any(r.get("bucketing", "earlier_impressions") == b for r in rows)]
    bucketings = bucketings or ["earlier_impressions"]
    titles = {"earlier_impressions": "podcast's earlier impressions", "recent_streams": "podcast's 7-day streams"}
    fig, axes = plt.subplots(len(bucketings), len(SOURCES), figsize=(12, 4.2 * len(bucketings)), squeeze=False)
    for axrow, bucketing in zip(axes, bucketings):
        for ax, source in zip(axrow, SOURCES):
            sel = [r for r in rows if r["source"] == source and r.get("bucketing", "earlier_impressions") == bucketing]
            x = np.arange(len(sel))
            width = 0.8 / len(COLD_START_MODELS)
            for i, m in enumerate(COLD_START_MODELS):
                vals = [r["ap"].get(m) or 0.0 for r in sel]
                errs = [r.get("ap_std", {}).get(m) or 0.0 for r in sel]
                ax.bar(x + i * width, vals, width, yerr=errs, capsize=2, label=m)
            ax.set_xticks(x + width * (len(COLD_START_MODELS) - 1) / 2)
            ax.set_xticklabels([f"{r['bucket']}\n(n={r['impressions']:,})" for r in sel], fontsize=7)
            ax.set_title(f"{source}: stream AP by the {titles[bucketing]} before the impression", fontsize=9)
            ax.set_ylabel("AP (mean ± std over seeds)")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
