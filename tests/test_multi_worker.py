"""Multi-worker training, really run: the Trainer's `run_fn` in two worker processes on localhost
(`TF_CONFIG`, `MultiWorkerMirroredStrategy`), as a Vertex Training worker pool runs the TFX Trainer
on each replica. Each worker reads its own shard of the training split; both reach the same
checkpoint; only the chief writes the Trainer's outputs, and what it pushes serves."""
import json
import os
import subprocess
import sys

import pytest

from core.tasks import TASKS
from models.config import MODEL_CONFIG_KEY, preset
from models.sampling import source_counts
from models.trainer import is_chief
from tests.conftest import REPO, score_in_fresh_process
from tests.test_training import FAST

pytestmark = pytest.mark.slow

WORKER = """
import json, os, sys
import core.env  # noqa: F401  (the Keras switch)
from tfx.components.trainer.fn_args_utils import FnArgs
from models.trainer import run_fn
args = json.loads(sys.argv[1])
run_fn(FnArgs(**args))
"""


@pytest.mark.parametrize("tf_config, chief", [
    (None, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "chief", "index": 0}}, True),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}}, False),
])
def test_is_chief_reads_tf_config(tf_config, chief):
    assert is_chief(json.dumps(tf_config) if tf_config else "") is chief


@pytest.mark.parametrize("n_files", [1, 3])
def test_worker_shards_are_disjoint_and_cover_the_split(tmp_path, n_files):
    """Every n-th record of one file, or every n-th file of several: disjoint, together the split."""
    import tensorflow as tf

    from models.sampling import Decoder, read_examples

    rows = 0
    for f in range(n_files):
        with tf.io.TFRecordWriter(str(tmp_path / f"part-{f}.gz"), options="GZIP") as w:
            for _ in range(7 + f):
                ex = tf.train.Example(features=tf.train.Features(feature={
                    "source": tf.train.Feature(int64_list=tf.train.Int64List(value=[rows % 2])),
                    "row": tf.train.Feature(int64_list=tf.train.Int64List(value=[rows]))}))
                w.write(ex.SerializeToString())
                rows += 1
    spec = Decoder({"source": tf.io.FixedLenFeature([], tf.int64), "row": tf.io.FixedLenFeature([], tf.int64)})
    pattern = str(tmp_path / "*.gz")
    shards = [sorted(int(x["row"]) for x in read_examples(pattern, spec, shard=(2, i))) for i in range(2)]
    assert not set(shards[0]) & set(shards[1]) and sorted(shards[0] + shards[1]) == list(range(rows))
    assert all(shards)
    ads_only = [int(x["row"]) for x in read_examples(pattern, spec, sources=["ads"], shard=(2, 1))]
    assert set(ads_only) <= set(shards[1])
    with pytest.raises(ValueError, match="shard index 2 outside 0..1"):
        read_examples(pattern, spec, shard=(2, 2))


def test_run_fn_trains_on_two_worker_processes(pipeline_run, transformed, tmp_path):
    from bench.multi_worker import tf_configs

    tft_out, files, graph_dir = transformed
    cfg = preset("unified", strategy="multi_worker", **dict(FAST, train_steps=4, eval_every_steps=2))
    serving = str(tmp_path / "Format-Serving")
    args = {"train_files": [files["train"]], "eval_files": [files["eval"]], "transform_output": graph_dir,
            "serving_model_dir": serving, "model_run_dir": str(tmp_path / "model_run"),
            "custom_config": {MODEL_CONFIG_KEY: cfg.to_json()}, "train_steps": 4}
    procs, temps = [], []
    for i, config in enumerate(tf_configs(2)):
        temps.append(tmp_path / f"tmp{i}")
        temps[-1].mkdir()
        env = dict(os.environ, PYTHONPATH=REPO, TF_CONFIG=config, TMPDIR=str(temps[-1]), TF_CPP_MIN_LOG_LEVEL="2")
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(args)], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, env=env))
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outs.append(out)
        assert p.returncode == 0, out[-3000:]

    # each worker read its own shard: together they are the training split, and neither is all of it
    shards = []
    for i, out in enumerate(outs):
        line = next(x for x in out.splitlines() if f"worker {i} of 2: its training shard in memory" in x)
        shards.append(json.loads(line[line.index("{"):line.index("}") + 1]))
    total = source_counts(files["train"])
    assert {s: shards[0][s] + shards[1][s] for s in total} == total
    assert all(0 < sum(s.values()) < sum(total.values()) for s in shards)
    assert "batches of 64" in outs[0]  # the global batch of 128, split across the two workers

    # the same decisions on both (early stopping and the checkpoint choice need identical weights)
    restored = [[x for x in out.splitlines() if "restored step" in x] for out in outs]
    assert restored[0] and restored[0] == restored[1]
    assert "worker chief" in outs[0] and "worker non-chief" in outs[1]

    # only the chief wrote the Trainer's outputs; the other's export went to a temporary folder, deleted
    assert os.path.exists(os.path.join(serving, "saved_model.pb"))
    assert os.listdir(temps[1]) == []
    raw = os.path.join(pipeline_run["root"], "pipeline", "TemporalExampleGen", "examples", "*", "Split-test", "*.gz")
    scored = score_in_fresh_process(serving, os.path.normpath(raw), 4)
    assert set(scored["serving_default"]) == set(scored["serving_raw"]) == {t.name for t in TASKS}
    assert all(0 <= p <= 1 for v in scored["serving_raw"].values() for p in v)


def test_tuning_trials_with_a_multi_worker_config_train_in_one_process(transformed):
    """The Tuner and the study train on the split in memory with the pipeline's ModelConfig: a
    `multi_worker` config there trains in this process (no TF_CONFIG, no shards), not a crash."""
    from models.sampling import examples_decoder, load_examples
    from models.trainer import train

    tft_out, files, _ = transformed
    examples, counts = load_examples(files["train"], examples_decoder(tft_out, files["train"]))
    cfg = preset("unified", strategy="multi_worker", **FAST)
    model = train(cfg, tft_out, None, files["eval"], verbose=False, examples=examples, counts=counts)
    assert model.distribute_strategy.num_replicas_in_sync == 1 and model.selected["step"] >= 1
