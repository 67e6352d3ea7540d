"""Pipeline time per component as the logs grow, and the growth exponent of each component.

    python bench/scaling.py --out runs/scaling [--sizes 100000,300000,1000000] [--train-steps N]
                            [--tune-trials N]

For each size, generates synthetic logs of about that many impressions (28 days, the default
generator with impressions_per_day = size / 28; users and podcasts scale with it), runs the whole
DAG in a new root with bench/profile_run.py (fresh process, wall and CPU seconds per component),
then fits seconds = a * impressions^b per component by least squares on log-log and prints b
(1.0 = linear). The Trainer's work is set in steps, not rows, so its exponent mostly shows the
first read of the data and the eval split; tuning (also in steps) is off unless --tune-trials is
given, as it would only add a constant. Results go to OUT/scaling.json. Expensive: about the
sum of the pipeline runs at each size.
"""
import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAYS = 28


def growth(sizes, seconds):
    """Least-squares slope of log(seconds) on log(size)."""
    import numpy as np

    x, y = np.log(np.asarray(sizes, float)), np.log(np.maximum(np.asarray(seconds, float), 0.05))
    return float(np.polyfit(x, y, 1)[0]) if len(x) > 1 else float("nan")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=os.path.join(REPO, "runs", "scaling"))
    p.add_argument("--sizes", default="100000,300000,1000000")
    p.add_argument("--train-steps", type=int, default=None, help="cap on training steps (default: the preset's)")
    p.add_argument("--tune-trials", type=int, default=0,
                   help="tuning trials per run (default 0: tuning works in steps, not rows)")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    env = dict(os.environ, PYTHONPATH=REPO, TF_USE_LEGACY_KERAS="1")
    results = {}
    os.makedirs(args.out, exist_ok=True)
    for n in sizes:
        logs, root = os.path.join(args.out, f"logs-{n}"), os.path.join(args.out, f"run-{n}")
        scale = n / 504_000
        if not os.path.isdir(logs):
            subprocess.run([sys.executable, "-m", "cli", "generate", "--out", logs,
                            "--impressions-per-day", str(n // DAYS), "--users", str(max(2000, int(20000 * scale))),
                            "--podcasts", str(max(300, int(3000 * scale)))], check=True, env=env, cwd=REPO)
        if not os.path.exists(os.path.join(root, "profile.json")):
            cmd = [sys.executable, os.path.join(REPO, "bench", "profile_run.py"), "--data", logs, "--root", root]
            if args.train_steps:
                cmd += ["--train-steps", str(args.train_steps)]
            cmd += ["--", "--tune-trials", str(args.tune_trials)]
            subprocess.run(cmd, check=True, env=env, cwd=REPO)
        prof = json.load(open(os.path.join(root, "profile.json")))
        results[n] = prof
        print(f"{n:>9,} impressions: {prof['wall_s']:.0f} s wall, {prof['cpu_s']:.0f} s CPU "
              f"(load {prof['load_start'][0]:.1f} -> {prof['load_end'][0]:.1f})", flush=True)
    names = [c for c in results[sizes[0]]["components"]]
    print(f"\n{'component':<22}" + "".join(f"{n:>12,}" for n in sizes) + f"{'exp (wall)':>12}{'exp (cpu)':>12}")
    table = {}
    for name in names:
        wall = [results[n]["components"].get(name, {}).get("wall_s", float("nan")) for n in sizes]
        cpu = [results[n]["components"].get(name, {}).get("cpu_s", float("nan")) for n in sizes]
        table[name] = {"wall_s": wall, "cpu_s": cpu, "exponent_wall": growth(sizes, wall),
                       "exponent_cpu": growth(sizes, cpu)}
        print(f"{name:<22}" + "".join(f"{w:>12.1f}" for w in wall) +
              f"{table[name]['exponent_wall']:>12.2f}{table[name]['exponent_cpu']:>12.2f}")
    with open(os.path.join(args.out, "scaling.json"), "w") as f:
        json.dump({"sizes": sizes, "components": table, "runs": {str(n): results[n] for n in sizes}}, f, indent=1)


if __name__ == "__main__":
    main()
