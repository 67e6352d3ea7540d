"""What the Tuner and the Trainer pay around training, on a run root: the first decoded batch (the
`tf.data` trace of the Transform graph), the train and eval splits read into memory through the graph
(`models.sampling.Decoder`, as `TrialData.load` and `train` read them), and one export of an untrained
model of a preset with both signatures (`models.export.export`, as every Tuner reference and Trainer
exports). Wall and CPU seconds of each, `--repeat` times in this process (the first decode and export of
a process pay one-time costs).

    python bench/model_io.py --root runs/default [--preset unified] [--repeat 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import core.env  # noqa: F401,E402  (the Keras switch, before TensorFlow loads)


def timed(label: str, fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    print(f"{label}: {time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU", flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=os.path.join(REPO, "runs", "default"))
    p.add_argument("--preset", default="unified")
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args(argv)

    import tensorflow_transform as tft

    from models.config import preset
    from models.export import export
    from models.model import build_model, dummy_features
    from models.preprocessing import cardinalities
    from models.sampling import PARSE_BATCH, _records, eval_dataset, examples_decoder, load_examples
    from pipeline.run_root import RunRoot

    try:
        graph, files = RunRoot(args.root).model_inputs()
    except LookupError as e:
        raise SystemExit(f"model_io: {e}")
    print(f"load average {os.getloadavg()}; {os.cpu_count()} CPUs; graph {graph}", flush=True)
    tft_out = tft.TFTransformOutput(graph)
    decoder = examples_decoder(tft_out, files["train"])
    print(f"examples: {'raw, through the Transform graph' if decoder.raw else 'materialized by Transform'}", flush=True)
    cfg = preset(args.preset)
    for k in range(args.repeat):
        print(f"-- round {k + 1}", flush=True)
        timed("first decoded batch", lambda: next(iter(_records(files["eval"]).batch(PARSE_BATCH).map(decoder))))
        examples, _ = timed("train split into memory", lambda: load_examples(files["train"], decoder))
        timed(f"eval split into memory ({cfg.max_eval_examples:,} at most)", lambda: list(eval_dataset(
            files["eval"], examples_decoder(tft_out, files["eval"]), max_examples=cfg.max_eval_examples)))
        print(f"  {len(examples):,} training examples", flush=True)
        model = build_model(cfg, cardinalities(tft_out), cfg.tasks())
        model(dummy_features(), training=False)
        with tempfile.TemporaryDirectory() as out:
            timed(f"export of an untrained {args.preset} model (both signatures)",
                  lambda: export(model, tft_out, out, cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
