"""Multi-worker training, really run: the Trainer's `train` with `strategy="multi_worker"` as N worker
processes on this machine (`TF_CONFIG` on localhost ports, each worker reading its shard of the
training split), beside the same training in one process, on one Transform output.

    python bench/multi_worker.py --root PIPELINE_ROOT [--workers 2] [--seeds 0,1,2] [--preset unified]
        [--train-steps N] [--threads N] [--out OUT.json]

PIPELINE_ROOT holds a pipeline/Transform/ output (`podcast-mtl run --root X` -> X). For every seed, one
training in one process (the default strategy) and one with N workers (`MultiWorkerMirroredStrategy`:
the global batch split across the workers, gradients all-reduced over gRPC on localhost). Each prints
and writes: test exact stream AP per source (core/ap.py, the Trainer's selected checkpoint), the
selected step, training seconds (evaluations excluded) and examples per second, global and per
worker, and the wall time of the whole process. Every worker evaluates the whole eval split (early
stopping and checkpoint choice need all of it) and must reach the same decisions: the script checks
that the workers restored the same step with the same eval AP.

On a 2-core machine two workers share the two cores that one process uses alone: the figure to read
is examples/s per worker and whether AP stays within seed noise, not a speed-up. `--threads N` sets
TensorFlow's intra- and inter-op threads per process (default: TensorFlow's own, all cores).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

RESULT = "MULTI_WORKER_RESULT "


def model_inputs(root: str):
    """The newest Transform graph of a run root and its examples (`RunRoot.model_inputs`); a one-line error if none."""
    from pipeline.run_root import RunRoot

    try:
        return RunRoot(root).model_inputs()
    except LookupError as e:
        raise SystemExit(f"multi_worker: {e}")


def free_ports(n: int) -> List[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tf_configs(n: int) -> List[str]:
    """TF_CONFIG of each of n workers on localhost (worker 0 is the chief)."""
    cluster = {"worker": [f"localhost:{p}" for p in free_ports(n)]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(n)]


def worker(args) -> int:
    """One training process (TF_CONFIG from the environment when multi-worker): prints RESULT json."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import tensorflow_transform as tft

    from models.config import preset
    from models.evaluate import score_dataset, stream_ap_by_source
    from models.sampling import eval_dataset, examples_decoder
    from models.trainer import is_chief, train

    t0 = time.time()
    graph, files = model_inputs(args.root)
    tft_out = tft.TFTransformOutput(graph)
    overrides = {"train_steps": args.train_steps} if args.train_steps else {}
    cfg = preset(args.preset, strategy=args.strategy, seed=args.seed, **overrides)
    model = train(cfg, tft_out, files["train"], files["eval"], verbose=True)
    test = eval_dataset(files["test"], examples_decoder(tft_out, files["test"]))
    ap = stream_ap_by_source(model.task_rows, score_dataset(model, test))
    print(RESULT + json.dumps({"strategy": args.strategy, "seed": args.seed, "chief": is_chief(),
                               "test_ap": ap, "selected": model.selected, "throughput": model.throughput,
                               "wall_seconds": time.time() - t0}, default=dict), flush=True)  # Keras wraps dicts
    return 0


def launch(args, strategy: str, seed: int, n: int, log_dir: str) -> List[Dict]:
    """n processes (n > 1: multi-worker, TF_CONFIG each) training seed; their RESULT lines."""
    configs = tf_configs(n) if n > 1 else [None]
    procs, logs = [], []
    for i, config in enumerate(configs):
        env = dict(os.environ, PYTHONPATH=REPO, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("TF_CONFIG", None)
        if config:
            env["TF_CONFIG"] = config
        log = os.path.join(log_dir, f"{strategy}-seed{seed}-worker{i}.log")
        logs.append(log)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--root", args.root, "--preset", args.preset,
               "--strategy", strategy, "--seed", str(seed)]
        if args.train_steps:
            cmd += ["--train-steps", str(args.train_steps)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        procs.append(subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env))
    codes = [p.wait() for p in procs]
    results = []
    for log, code in zip(logs, codes):
        text = open(log).read()
        lines = [line for line in text.splitlines() if line.startswith(RESULT)]
        if code != 0 or not lines:
            raise SystemExit(f"multi_worker: {log} exited {code}:\n" + text[-3000:])
        results.append(json.loads(lines[-1][len(RESULT):]))
    return results


def check_agreement(results: List[Dict]) -> None:
    """The workers of one multi-worker training restored the same step with the same eval AP."""
    first = results[0]["selected"]
    for r in results[1:]:
        if r["selected"]["step"] != first["step"] or r["selected"]["eval_ap"] != first["eval_ap"]:
            raise SystemExit(f"multi_worker: the workers disagree: {[x['selected'] for x in results]}")


def summary_markdown(rows: List[Dict], workers: int) -> str:
    lines = ["| seed | training | test AP promotions / ads | selected step | training s | examples/s (global) | "
             "examples/s per worker | process wall s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["throughput"]
        lines.append(f"| {r['seed']} | {r['label']} | {r['test_ap']['promotions']:.4f} / {r['test_ap']['ads']:.4f} | "
                     f"{r['selected']['step']} | {t['seconds']:.1f} | {t['examples_per_second']:,.0f} | "
                     f"{t['examples_per_second_per_worker']:,.0f} | {r['wall_seconds']:.0f} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="a pipeline root with a Transform output")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seeds", default="0", help="comma-separated training seeds (default 0)")
    p.add_argument("--preset", default="unified")
    p.add_argument("--train-steps", type=int, default=None, help="training steps cap (default: the preset's)")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow threads per process (default: all cores)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--strategy", default="default", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.workers < 2:
        p.error("--workers must be at least 2")
    model_inputs(args.root)  # a clear error before any process starts
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    log_dir = os.path.join(os.path.dirname(os.path.abspath(args.out)) if args.out else REPO, "multi_worker_logs")
    os.makedirs(log_dir, exist_ok=True)
    print(f"load average {os.getloadavg()}", flush=True)
    rows = []
    for seed in seeds:
        for strategy, n in (("default", 1), ("multi_worker", args.workers)):
            t0 = time.time()
            results = launch(args, strategy, seed, n, log_dir)
            if n > 1:
                check_agreement(results)
            chief = next(r for r in results if r["chief"])
            chief["label"] = "one process" if n == 1 else f"{n} workers"
            chief["per_worker"] = [r["throughput"] for r in results]
            rows.append(chief)
            print(f"seed {seed}, {chief['label']}: test AP {json.dumps(chief['test_ap'])}, step "
                  f"{chief['selected']['step']}, {chief['throughput']['examples_per_second']:,.0f} examples/s "
                  f"({time.time() - t0:.0f} s)", flush=True)
    print(summary_markdown(rows, args.workers))
    print(f"load average {os.getloadavg()}; logs in {log_dir}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"rows": rows, "workers": args.workers, "preset": args.preset, "threads": args.threads,
                       "train_steps": args.train_steps, "root": args.root}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
