"""The GBDT peer: LightGBM on the same split and inputs as the pipeline's model.

    python bench/gbdt_peer.py --data LOGS [--against promotions=AP,ads=AP] [--json OUT]
        [--test-days 5 --eval-days 3]

The logs are split as `podcast-mtl run` splits them (`core.split.TemporalSplit`: by default the
newest 5 days test, the 3 before eval; KuaiRand runs use `--test-days 3 --eval-days 2`).
Inputs: the raw columns, as `bench/peer.py` computes them in numpy the way Transform does
(vocabulary ids and hash buckets as LightGBM categoricals,
`user_id` included; numerics; hour and weekday; `source`), plus the engineered features the model
gets (`core.fields.DERIVED`: candidate in history / follows, history's share of the candidate's
genre, ...). The lists themselves are not GBDT inputs. Two variants:
- pooled: one model on every source's impressions, `source` a feature;
- per source: one model per source, trained on that source's impressions only.
Each is early-stopped on the eval split's AP (LightGBM's `average_precision`); the test split's
exact stream AP per source (core/ap.py) is printed, with its ratio to `--against` (the pushed
model's AP) when given.
"""
import argparse
import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from core.ap import average_precision  # noqa: E402
from core.fields import DERIVED_NAMES, FEATURES, SOURCES, Transform  # noqa: E402

PARAMS = dict(objective="binary", learning_rate=0.05, num_leaves=63, min_data_in_leaf=100,
              feature_fraction=0.8, bagging_fraction=0.8, bagging_freq=1, lambda_l2=1.0,
              cat_smooth=10, max_cat_to_onehot=8, metric="average_precision", verbose=-1)


def columns(derived: bool = True):
    """(every GBDT input, the categorical ones): the model's non-list inputs, plus DERIVED."""
    cats, nums = [], []
    for f in FEATURES:
        if f.transform == Transform.TIME:
            cats += ["hour", "weekday"]
        elif f.transform == Transform.NUMERIC:
            nums.append(f.name)
        elif f.transform != Transform.LIST:
            cats.append(f.name)
    return cats + nums + (list(DERIVED_NAMES) if derived else []), cats


def matrix(split, names):
    return np.stack([split[n].astype(np.float64) for n in names], axis=1)


def fit(data, names, cats, rows, seed, rounds, patience):
    """A LightGBM booster trained on `rows` of each split ({split: index array}), early-stopped on eval AP."""
    import lightgbm as lgb

    train = lgb.Dataset(matrix(data["train"], names)[rows["train"]], data["train"]["stream"][rows["train"]],
                        feature_name=names, categorical_feature=cats, free_raw_data=False)
    valid = lgb.Dataset(matrix(data["eval"], names)[rows["eval"]], data["eval"]["stream"][rows["eval"]],
                        reference=train)
    params = dict(PARAMS, seed=seed, num_threads=max(1, min(4, os.cpu_count() or 1)))
    return lgb.train(params, train, num_boost_round=rounds, valid_sets=[valid],
                     callbacks=[lgb.early_stopping(patience, verbose=False)])


def test_ap(booster, data, names, sources=SOURCES):
    x = matrix(data["test"], names)
    scores = booster.predict(x, num_iteration=booster.best_iteration)
    src = data["test"]["source"]
    return {s: average_precision(data["test"]["stream"][src == SOURCES.index(s)], scores[src == SOURCES.index(s)])
            for s in sources}


def run(logs: str, seed: int = 0, rounds: int = 2000, patience: int = 50, derived: bool = True, progress=print,
        split=None):
    """{"pooled": {source: test AP}, "per_source": {source: test AP}, "rounds": {...}, "seconds": ...}.
    `split`: a core.split.TemporalSplit (default: its defaults, as `podcast-mtl run`)."""
    from bench.peer import featurize, read_logs

    t0 = time.time()
    table, splits = read_logs(logs, split)
    data, _ = featurize(table, splits)
    names, cats = columns(derived)
    progress(f"features of {sum(len(r) for r in splits.values()):,} impressions in {time.time() - t0:.0f} s "
             f"({len(names)} inputs, {len(cats)} categorical)")
    out = {"inputs": names, "pooled": {}, "per_source": {}, "rounds": {}}
    every = {s: np.arange(len(data[s]["source"])) for s in data}
    t1 = time.time()
    booster = fit(data, names, cats, every, seed, rounds, patience)
    out["pooled"] = test_ap(booster, data, names)
    out["rounds"]["pooled"] = booster.best_iteration
    progress(f"pooled: {booster.best_iteration} rounds ({time.time() - t1:.0f} s), test AP " +
             " ".join(f"{s}={v:.4f}" for s, v in out["pooled"].items()))
    for i, source in enumerate(SOURCES):
        t1 = time.time()
        rows = {s: np.flatnonzero(data[s]["source"] == i) for s in data}
        booster = fit(data, names, cats, rows, seed, rounds, patience)
        out["per_source"][source] = test_ap(booster, data, names, (source,))[source]
        out["rounds"][source] = booster.best_iteration
        progress(f"{source} only: {booster.best_iteration} rounds ({time.time() - t1:.0f} s), test AP "
                 f"{out['per_source'][source]:.4f}")
    out["seconds"] = round(time.time() - t0, 1)
    return out


def main():
    from bench.peer import add_split_args, split_of

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="day-partitioned Parquet logs (as `podcast-mtl run --data`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=2000, help="boosting rounds at most (early-stopped)")
    p.add_argument("--patience", type=int, default=50, help="rounds without a better eval AP before stopping")
    p.add_argument("--raw-only", action="store_true", help="without the engineered features (core.fields.DERIVED)")
    p.add_argument("--against", default=None, help="the pushed model's test AP, e.g. promotions=0.22,ads=0.16")
    p.add_argument("--json", default=None, help="write the result here")
    add_split_args(p)
    args = p.parse_args()
    if not os.path.isdir(args.data):
        print(f"error: --data {args.data}: not a folder of day partitions", file=sys.stderr)
        sys.exit(2)
    out = run(args.data, args.seed, args.rounds, args.patience, derived=not args.raw_only,
              split=split_of(args))
    if args.against:
        ref = {k: float(v) for k, v in (kv.split("=") for kv in args.against.split(","))}
        for variant in ("pooled", "per_source"):
            print(f"{variant}: model / GBDT AP ratio " +
                  " ".join(f"{s}={ref[s] / out[variant][s]:.3f}" for s in SOURCES if s in ref))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(out, data=args.data, seed=args.seed, test_days=args.test_days, eval_days=args.eval_days),
                      f, indent=1)


if __name__ == "__main__":
    main()
