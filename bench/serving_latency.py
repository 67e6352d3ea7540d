"""Serving latency of the pushed SavedModel, in-process, through `serving_default`.

    python bench/serving_latency.py [--root runs/default] [--model DIR] [--calls 1000]

Loads the newest pushed model (`ROOT/serving/<version>/`, or --model), reads raw test-split
tf.Examples from the run's TemporalExampleGen output, and prints:
- latency of one impression per call (serialized tf.Example -> 5 probabilities): p50, p90, p99, mean
  over --calls calls, each on a different impression, after warm-up;
- impressions/second at batch 256 and 1024 (whole batches of distinct impressions).
It also prints the load averages, the thread settings and the CPU seconds of the timed part:
on a shared machine wall latency is inflated by load.
"""
import argparse
import glob
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import core.env  # noqa: F401,E402  (the Keras switch, before TensorFlow loads)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from core.serving import SERVING_DEFAULT  # noqa: E402
from core.versions import newest_version  # noqa: E402
from pipeline.configs import DEFAULT_ROOT  # noqa: E402
from pipeline.run_root import Node, RunRoot  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--model", default=None, help="SavedModel folder (default: newest under ROOT/serving)")
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--batches", type=int, default=20, help="timed batches per batch size")
    args = p.parse_args()

    root = RunRoot(args.root)
    model_dir = args.model or newest_version(root.serving)
    examples = root.newest_artifact(Node.EXAMPLE_GEN, "examples")
    if not model_dir or not examples:
        sys.exit(f"no pushed model or examples under {args.root}: run `podcast-mtl run --root {args.root}` first")
    need = max(args.calls, 1024 * 2) + 100
    records = [r.numpy() for r in tf.data.TFRecordDataset(
        sorted(glob.glob(os.path.join(examples, "Split-test", "*.gz"))), "GZIP").take(need)]
    serve = tf.saved_model.load(model_dir).signatures[SERVING_DEFAULT]
    print(f"model {model_dir}; {len(records)} test impressions; "
          f"intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, "
          f"inter-op {tf.config.threading.get_inter_op_parallelism_threads() or 'default'}")
    load0 = os.getloadavg()

    one = [tf.constant([r]) for r in records[:args.calls]]
    for x in one[:50]:  # warm-up
        serve(examples=x)
    times = np.empty(len(one))
    c0 = cpu()
    for i, x in enumerate(one):
        t = time.perf_counter()
        out = serve(examples=x)
        next(iter(out.values())).numpy()
        times[i] = time.perf_counter() - t
    c1 = cpu()
    ms = times * 1000
    print(f"one impression per call ({len(one)} calls): p50 {np.percentile(ms, 50):.2f} ms, "
          f"p90 {np.percentile(ms, 90):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms, mean {ms.mean():.2f} ms; "
          f"CPU {1000 * (c1 - c0) / len(one):.2f} ms per call")
    for batch in (256, 1024):
        xs = [tf.constant(records[i:i + batch]) for i in range(0, len(records) - batch + 1, batch)]
        serve(examples=xs[0])
        n, t0, c0 = 0, time.perf_counter(), cpu()
        for k in range(args.batches):
            out = serve(examples=xs[k % len(xs)])
            next(iter(out.values())).numpy()
            n += batch
        took, used = time.perf_counter() - t0, cpu() - c0
        print(f"batch {batch}: {n / took:,.0f} impressions/s wall ({1000 * took / args.batches:.1f} ms per batch), "
              f"{n / used:,.0f} impressions per CPU second")
    load1 = os.getloadavg()
    print(f"load average at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


if __name__ == "__main__":
    main()
