"""What a longer tuning budget finds: the Tuner's own search (models/tuning.py, Bayesian after its
starting points) with N trials on one Transform output, then the best values of the first K trials
(`make run`'s budget: K = TuningConfig().trials) and of all N trained as the Trainer trains them
(full steps, early-stopped, the checkpoint chosen per source), each with several seeds, scored on
the test split (exact stream AP per source, core/ap.py).

    python bench/tuning_budget.py ROOT --trials 20 [--steps 300] [--seeds 0,1,2] [--out OUT.json]

ROOT holds a pipeline/Transform/ output (a `podcast-mtl run` root, or `ablate --out X` -> X/work).
Prints every trial (values, eval AP per source, score) as the Tuner does, then a table of test AP
(mean and per seed) for the two budgets; writes everything to OUT.json.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import core.env  # noqa: F401,E402  (the Keras switch, before TensorFlow loads)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--steps", type=int, default=None, help="steps per trial (default: TuningConfig's)")
    p.add_argument("--preset", default="unified")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--tuning-seed", type=int, default=0)
    p.add_argument("--out", default=None)
    args = p.parse_args()

    import tensorflow as tf
    import tensorflow_transform as tft

    from models.config import TuningConfig, preset
    from models.evaluate import score_dataset, stream_ap_by_source
    from models.sampling import eval_dataset, examples_decoder
    from models.trainer import hyperparameter_values, train
    from models.tuning import TrialData, tune
    from pipeline.run_root import RunRoot

    default_budget = TuningConfig().trials
    tuning = TuningConfig(trials=args.trials, seed=args.tuning_seed,
                          **({"steps": args.steps} if args.steps else {}))
    run_root = RunRoot(args.root)
    try:
        graph, files = run_root.model_inputs()
    except LookupError as e:
        raise SystemExit(f"error: {e}")
    tft_out = tft.TFTransformOutput(graph)
    base = preset(args.preset)
    t0 = time.time()
    data = TrialData.load(tft_out, files["train"], files["eval"], base.max_eval_examples)
    test = list(eval_dataset(files["test"], examples_decoder(tft_out, files["test"])))
    print(f"data in memory in {time.time() - t0:.0f} s: {data.counts}; {args.trials} trials of {tuning.steps} steps "
          f"(make run's budget: {default_budget})", flush=True)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as work:
        result = tune(base, tuning, data, work, progress=lambda line: print(line, flush=True))
    search_s = time.time() - t0
    trials = result["trials"]

    def best_of(k):  # the best of the first k trials, with its position (1 = the first trial)
        scored = [dict(t, position=i + 1) for i, t in enumerate(trials[:k]) if t.get("score") is not None]
        return max(scored, key=lambda t: t["score"]) if scored else None

    budgets = {f"first {default_budget} trials (make run)": best_of(default_budget),
               f"all {len(trials)} trials": best_of(len(trials))}
    seeds = [int(s) for s in args.seeds.split(",")]
    out = {"root": os.path.abspath(args.root), "preset": args.preset, "tuning": json.loads(tuning.to_json()),
           "search_s": round(search_s), "reference": result["reference"], "trials": trials, "budgets": {}}
    for name, trial in budgets.items():
        values = hyperparameter_values(trial["values"])
        runs = []
        for seed in seeds:
            t1 = time.time()
            cfg = base.with_hyperparameters(values).replace(seed=seed)
            model = train(cfg, tft_out, None, None, verbose=False, examples=data.examples, counts=data.counts,
                          eval_data=data.eval_batches)
            ap = stream_ap_by_source(model.task_rows, score_dataset(model, test))
            runs.append({"seed": seed, "test_ap": ap, "step": model.selected["step"], "s": round(time.time() - t1)})
            print(f"{name}, seed {seed}: test AP promotions {ap['promotions']:.4f} ads {ap['ads']:.4f} "
                  f"(restored step {model.selected['step']}, {time.time() - t1:.0f} s)", flush=True)
            tf.keras.backend.clear_session()
        mean = {s: sum(r["test_ap"][s] for r in runs) / len(runs) for s in ("promotions", "ads")}
        out["budgets"][name] = {"trial": trial, "runs": runs, "mean_test_ap": mean}
        if args.out:
            with open(args.out, "w") as f:
                json.dump(out, f, indent=1, default=str)
    print(f"\nsearch: {len(trials)} trials in {search_s:.0f} s")
    print(f"{'budget':<28}{'best trial':>11}{'promotions AP':>15}{'ads AP':>9}   per seed (promotions / ads)")
    for name, b in out["budgets"].items():
        per = ", ".join(f"{r['test_ap']['promotions']:.4f} / {r['test_ap']['ads']:.4f}" for r in b["runs"])
        print(f"{name:<28}{b['trial']['position']:>11}{b['mean_test_ap']['promotions']:>15.4f}"
              f"{b['mean_test_ap']['ads']:>9.4f}   {per}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
