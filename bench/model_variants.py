"""Train ModelConfig variants on one Transform output (the split in memory) and print test stream AP per source.

    python bench/model_variants.py PIPELINE_ROOT '{"name": ["preset", {overrides}], ...}' SEEDS [OUT.json]

PIPELINE_ROOT holds a pipeline/Transform/ output (e.g. `podcast-mtl ablate --out X` -> X/work).
Each variant is trained as the Trainer trains (models/trainer.train: early stopping on eval stream AP,
the checkpoint chosen per source) and its test split scored (exact AP, core/ap.py).
"""
import json
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf
import tensorflow_transform as tft
from models.config import preset
from models.evaluate import score_dataset, stream_ap_by_source
from models.sampling import eval_dataset, examples_decoder
from models.trainer import train
from models.tuning import TrialData
from pipeline.run_root import RunRoot

root = sys.argv[1]
variants = json.loads(sys.argv[2])  # {name: [preset, {overrides}]}
seeds = [int(s) for s in sys.argv[3].split(",")] if len(sys.argv) > 3 else [0]
out = sys.argv[4] if len(sys.argv) > 4 else None
graph, files = RunRoot(root).model_inputs()
tft_out = tft.TFTransformOutput(graph)
t0 = time.time()
base = preset("unified")
mem = TrialData.load(tft_out, files["train"], files["eval"], base.max_eval_examples)
test = list(eval_dataset(files["test"], examples_decoder(tft_out, files["test"])))
print(f"data in memory {time.time()-t0:.0f}s {mem.counts}", flush=True)
results = {}
for name, (p, ov) in variants.items():
    for seed in seeds:
        t1 = time.time()
        cfg = preset(p, **ov).replace(seed=seed)
        model = train(cfg, tft_out, None, None, verbose=False, examples=mem.examples, counts=mem.counts, eval_data=mem.eval_batches)
        ap = stream_ap_by_source(model.task_rows, score_dataset(model, test))
        ev = model.selected["eval_ap_all_sources"]
        results.setdefault(name, []).append({"seed": seed, "test": ap, "eval": ev, "step": model.selected["step"],
                                             "s": round(time.time() - t1)})
        print(f"{name} seed {seed}: test promotions={ap['promotions']:.4f} ads={ap['ads']:.4f} | eval "
              f"{ev['promotions']:.4f} {ev['ads']:.4f} step {model.selected['step']} ({time.time() - t1:.0f}s)",
              flush=True)
        tf.keras.backend.clear_session()
        if out:
            json.dump(results, open(out, "w"), indent=1)
