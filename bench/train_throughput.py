"""Training throughput vs the input pipeline alone, on a pipeline run's Transform output.

    python bench/train_throughput.py [--root ROOT] [--preset unified] [--steps 300]

Prints examples/second of (a) the input pipeline alone, (b) training (forward, backward,
update) fed by it, their ratio, and the read amplification of balanced sampling: records read
from the files per example served, with the minority (ads) stream cached and without; each for
the file path and for the split held in memory (`MemoryExamples`, what the Trainer uses for a split
of at most `memory_max_examples`), with the seconds of the first training step (tracing).
Run `make run` first so that ROOT holds a Transform output.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import core.env  # noqa: F401,E402  (the Keras switch, before TensorFlow loads)
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from models.config import preset  # noqa: E402
from pipeline.configs import DEFAULT_ROOT  # noqa: E402
from pipeline.run_root import RunRoot  # noqa: E402
from models.model import build_model, dummy_features  # noqa: E402
from models.preprocessing import cardinalities  # noqa: E402
from models.sampling import examples_decoder, load_examples, train_dataset  # noqa: E402


def model_inputs(root):
    try:
        return RunRoot(root).model_inputs()
    except LookupError as e:
        sys.exit(str(e))


def input_rate(files, decoder, cfg, steps, warmup=20, examples=None):
    counter = tf.Variable(0, dtype=tf.int64)
    it = iter(train_dataset(files, decoder, cfg, counter=counter, examples=examples))
    for _ in range(warmup):
        next(it)
    t0 = time.perf_counter()
    for _ in range(steps):
        next(it)
    took = time.perf_counter() - t0
    served = (steps + warmup) * cfg.batch_size
    return steps * cfg.batch_size / took, int(counter.numpy()) / served


def train_rate(files, decoder, cfg, tft_out, steps, warmup=20, examples=None):
    """(examples/s of `steps` steps, seconds of the first step)."""
    model = build_model(cfg, cardinalities(tft_out), cfg.tasks())
    model(dummy_features(), training=False)
    model.optimizer.build(model.trainable_variables)  # as models/trainer.py does
    ds = train_dataset(files, decoder, cfg, examples=examples)
    t0 = time.perf_counter()
    model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)
    first = time.perf_counter() - t0
    model.fit(ds, steps_per_epoch=warmup, epochs=1, verbose=0)
    t0 = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    tf.keras.backend.clear_session()
    return steps * cfg.batch_size / (time.perf_counter() - t0), first


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--preset", default="unified")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=1024)
    args = p.parse_args()
    graph, splits = model_inputs(args.root)
    tft_out = tft.TFTransformOutput(graph)
    files = splits["train"]
    decoder = examples_decoder(tft_out, files)
    cfg = preset(args.preset, batch_size=args.batch_size)
    print(f"preset {args.preset}, batch {cfg.batch_size}, {args.steps} timed steps, {os.cpu_count()} CPUs", flush=True)
    t0 = time.perf_counter()
    examples, _ = load_examples(files, decoder)
    print(f"train split read into memory: {len(examples):,} examples in {time.perf_counter() - t0:.1f} s, "
          f"{sum(a.nbytes for a in examples.arrays.values()) / 2**20:,.0f} MiB", flush=True)
    for path, ex in (("files", None), ("memory", examples)):
        in_eps, amp = input_rate(files, decoder, cfg, args.steps, examples=ex)
        print(f"[{path}] input pipeline alone: {in_eps:,.0f} examples/s" +
              (f"; records read per example served: {amp:.2f}" if ex is None else ""), flush=True)
        if ex is None and cfg.cache_sources:
            _, amp_nc = input_rate(files, decoder, cfg.replace(cache_sources=()), args.steps)
            print(f"  same without caching the ads stream: {amp_nc:.2f} records read per example served", flush=True)
        tr_eps, first = train_rate(files, decoder, cfg, tft_out, args.steps, examples=ex)
        print(f"[{path}] training: {tr_eps:,.0f} examples/s ({tr_eps / cfg.batch_size:.1f} steps/s); "
              f"first step (tracing) {first:.1f} s; training / input ratio {tr_eps / in_eps:.2f} (1.0 = input-bound)",
              flush=True)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

if __name__ == "__main__":
    main()
