"""Training on real Transform output: balanced batches, every preset, a sixth task end to end."""
import dataclasses
import os

import numpy as np
import pytest

from models.config import PRESETS, preset
from core.fields import SOURCES
from models.sampling import examples_decoder, load_examples, source_counts, train_dataset
from core.tasks import TASKS, Task
from models.trainer import train
from tests.conftest import run_python, score_in_fresh_process

pytestmark = pytest.mark.slow
ADS = SOURCES.index("ads")
FAST = dict(train_steps=2, eval_every_steps=1, batch_size=128, shuffle_buffer=1000, max_eval_examples=1000,
            encoder_units=(32,), tower_units=(8,))


def _shares(ds, n):
    return [float(np.mean(b["source"].numpy() == ADS)) for b in ds.take(n)]


_MEMORY = {}


def _batches(path, files, decoder, cfg):
    """Training batches from the files, or from the split read into memory (tuning, study, and the
    Trainer on a split of at most memory_max_examples)."""
    if path == "files":
        return train_dataset(files["train"], decoder, cfg)
    if files["train"] not in _MEMORY:
        _MEMORY[files["train"]] = load_examples(files["train"], decoder)
    examples, counts = _MEMORY[files["train"]]
    return train_dataset(None, decoder, cfg, examples=examples, counts=counts)


@pytest.mark.parametrize("path", ["files", "memory"])
def test_balanced_batches_are_half_ads(transformed, path):
    tft_out, files, graph_dir = transformed
    decoder = examples_decoder(tft_out, files["train"])
    cfg = preset("unified_balanced", batch_size=1024, shuffle_buffer=5000)
    shares = _shares(_batches(path, files, decoder, cfg), 100)
    assert 0.45 <= np.mean(shares) <= 0.55
    assert min(shares) >= 0.40 and max(shares) <= 0.60
    natural = _shares(_batches(path, files, decoder, cfg.replace(mix="natural")), 20)
    assert np.mean(natural) < 0.25  # the logged mix: promotions outnumber ads
    ratio = cfg.replace(source_shares=(("promotions", 0.7), ("ads", 0.3)))
    assert 0.25 <= np.mean(_shares(_batches(path, files, decoder, ratio), 50)) <= 0.35
    temperature = _shares(_batches(path, files, decoder, cfg.replace(source_alpha=1.0)), 50)
    counts = source_counts(files["train"])
    assert abs(np.mean(temperature) - counts["ads"] / sum(counts.values())) < 0.03  # alpha 1 = natural shares


def test_memory_batches_pass_over_every_row_once_per_pass(transformed):
    tft_out, files, graph_dir = transformed
    decoder = examples_decoder(tft_out, files["train"])
    examples, counts = load_examples(files["train"], decoder)
    assert counts == source_counts(files["train"]) and len(examples) == sum(counts.values())
    cfg = preset("promotions_baseline", batch_size=100)
    batches = examples.index_batches(cfg, 100)
    n = counts["promotions"] // 100 * 100
    rows = np.concatenate([next(batches) for _ in range(n // 100)])
    promotions = np.flatnonzero(examples.arrays["source"] == SOURCES.index("promotions"))
    assert len(np.unique(rows)) == n and np.isin(rows, promotions).all()  # no repeat within a pass
    assert not np.array_equal(rows, np.sort(rows))  # shuffled


@pytest.mark.parametrize("path", ["files", "memory"])
def test_batches_are_reproducible_for_a_seed(transformed, path):
    tft_out, files, graph_dir = transformed
    decoder = examples_decoder(tft_out, files["train"])
    cfg = preset("unified", batch_size=256, shuffle_buffer=2000)

    def first(c):
        return [b["podcast_id"].numpy().tolist() for b in _batches(path, files, decoder, c).take(3)]

    assert first(cfg) == first(cfg)
    assert first(cfg) != first(cfg.replace(seed=1))


@pytest.mark.parametrize("path", ["files", "memory"])
def test_ads_only_presets_see_only_ads(transformed, path):
    tft_out, files, graph_dir = transformed
    decoder = examples_decoder(tft_out, files["train"])
    shares = _shares(_batches(path, files, decoder, preset("ads_only", batch_size=256)), 5)
    assert shares == [1.0] * 5


@pytest.mark.parametrize("limit", [0, 10**9])
def test_the_trainer_holds_a_small_split_in_memory_and_streams_a_large_one(transformed, limit, capsys):
    tft_out, files, graph_dir = transformed
    cfg = preset("unified", **FAST).replace(memory_max_examples=limit)
    model = train(cfg, tft_out, files["train"], files["eval"], verbose=True)
    assert ("training split in memory" in capsys.readouterr().out) == bool(limit)
    assert np.isfinite(model.history.history["loss"]).all() and model.selected["step"] > 0


def test_source_filter_before_parsing_keeps_the_same_records_in_order(transformed):
    import tensorflow as tf

    from models.sampling import read_examples

    tft_out, files, graph_dir = transformed
    decoder = examples_decoder(tft_out, files["train"])
    every = read_examples(files["train"], decoder).batch(100_000)
    every = {k: v.numpy() for k, v in next(iter(every)).items()}
    ads = every["source"] == ADS
    assert 0 < ads.sum() < ads.size
    only = next(iter(read_examples(files["train"], decoder, sources=["ads"]).batch(100_000)))
    for key in ("podcast_id", "user_history", "stream", "source"):
        np.testing.assert_array_equal(only[key].numpy(), every[key][ads])
    counter = tf.Variable(0, dtype=tf.int64)
    for _ in read_examples(files["train"], decoder, counter, sources=["ads"]).batch(100_000):
        pass
    assert int(counter.numpy()) == ads.size  # every record read, the majority dropped before parsing


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_trains(transformed, name):
    tft_out, files, graph_dir = transformed
    cfg = preset(name, **FAST)
    model = train(cfg, tft_out, files["train"], files["eval"], verbose=False)
    assert set(model.towers) == set(cfg.heads)
    losses = model.history.history["loss"]
    assert len(losses) == 2 and all(np.isfinite(losses))
    for source in SOURCES:  # every source's eval AP is logged, also the one a preset does not train on
        assert np.isfinite(model.history.history[f"val_stream_ap_{source}"]).all()
    assert set(model.selected["eval_ap"]) == set(cfg.train_sources)


def test_a_sixth_task_trains_and_serves_end_to_end(transformed, pipeline_run, tmp_path):
    from models.export import export

    tft_out, files, graph_dir = transformed
    table = TASKS + (Task("ad_click", "click", ("ads",)),)
    cfg = dataclasses.replace(preset("unified", **FAST), heads=tuple(t.name for t in table))
    model = train(cfg, tft_out, files["train"], files["eval"], table=table, verbose=False)
    before = [w.numpy().copy() for w in model.towers["ad_click"].trainable_variables]
    assert any(np.abs(w).sum() > 0 for w in before)
    out = str(tmp_path / "model")
    export(model, tft_out, out)
    raw = os.path.join(pipeline_run["root"], "pipeline", "TemporalExampleGen", "examples", "*", "Split-test", "*.gz")
    scored = score_in_fresh_process(out, raw, 4)
    assert set(scored["serving_default"]) == {t.name for t in table}


def test_mirrored_strategy_trains_on_two_replicas(transformed):
    tft_out, files, graph_dir = transformed
    code = f"""
import os
import core.env  # noqa: F401  (the Keras switch)
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import tensorflow_transform as tft
from models.config import preset
from models.trainer import train
cfg = preset("unified", strategy="mirrored", **{FAST!r})
model = train(cfg, tft.TFTransformOutput({graph_dir!r}), {files['train']!r}, {files['eval']!r},
              verbose=False)
print("REPLICAS", tf.distribute.get_strategy().num_replicas_in_sync, model.distribute_strategy.num_replicas_in_sync)
print("LOSS", model.history.history["loss"][-1])
"""
    r = run_python(["-c", code])
    assert r.returncode == 0, r.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines() if line.startswith(("REPLICAS", "LOSS")))
    assert lines["REPLICAS"].split()[-1] == "2"
    assert np.isfinite(float(lines["LOSS"]))


def test_training_in_memory_does_not_depend_on_the_files_or_their_record_order(transformed, tmp_path):
    """ExampleGen's multi_processing mode writes a split as one file per worker, in another order: the
    same rows, read into memory in canonical order, train the same weights bit for bit (the raw records
    are sorted before the Transform graph decodes them: its float features change in the last bits
    with a record's place in a batch)."""
    import tensorflow as tf

    tft_out, files, graph_dir = transformed
    records = list(tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(files["train"])), compression_type="GZIP")
                   .as_numpy_iterator())
    order = np.random.default_rng(0).permutation(len(records))
    for k, part in enumerate(np.array_split(order, 2)):
        with tf.io.TFRecordWriter(str(tmp_path / f"part-{k}.gz"), options="GZIP") as out:
            for i in part:
                out.write(records[i])
    cfg = preset("unified", **FAST).replace(train_steps=6, eval_every_steps=3)
    one, two = (train(cfg, tft_out, pattern, files["eval"]) for pattern in (files["train"], str(tmp_path / "*.gz")))
    assert len(one.weights) == len(two.weights)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(one.weights, two.weights))
    assert any(np.abs(w.numpy()).sum() > 0 for w in one.trainable_weights)


def test_checkpoint_refinement_scores_the_weights_between_evaluations_and_leaves_the_training_alone(transformed):
    """With `checkpoint_refine_steps`, the weights between two evaluations near the chosen one are
    scored at the end and the choice is made among all scored checkpoints; the evaluations every
    `eval_every_steps` (and so early stopping and the batches) are those of a training without it."""
    from models.evaluate import score_dataset, stream_ap_by_source
    from models.sampling import eval_dataset
    from models.selection import choose_checkpoint

    tft_out, files, graph_dir = transformed
    base = preset("unified", **FAST).replace(train_steps=12, eval_every_steps=4, early_stopping_patience=0)
    coarse = train(base.replace(checkpoint_refine_steps=0), tft_out, files["train"], files["eval"], verbose=False)
    fine = train(base.replace(checkpoint_refine_steps=2), tft_out, files["train"], files["eval"], verbose=False)
    keys = [f"val_stream_ap_{s}" for s in base.train_sources]
    for key in keys + ["loss"]:  # the same training: the same losses and evaluations every 4 steps (to
        # float rounding: the first training in this process, after the in-process DAG run, differed in
        # the 7th digit; in a fresh process the two are equal bit for bit)
        assert fine.history.history[key] == pytest.approx(coarse.history.history[key], rel=1e-5)
    assert coarse.selected["refined"] == []
    refined = fine.selected["refined"]
    evaluations = {4 * (i + 1): {s: fine.history.history[f"val_stream_ap_{s}"][i] for s in base.train_sources}
                   for i in range(3)}
    chosen = list(evaluations)[choose_checkpoint(list(evaluations.values()), base.checkpoint_tolerance)]
    # the odd steps within one interval of the chosen evaluation, and no other
    assert [r["step"] for r in refined] == [s for s in (2, 6, 10) if abs(s - chosen) < 4]
    scored = {**evaluations, **{r["step"]: r["eval_ap"] for r in refined}}
    steps = sorted(scored)
    assert fine.selected["step"] == steps[choose_checkpoint([scored[s] for s in steps], base.checkpoint_tolerance)]
    # the restored weights are the selected checkpoint's: scoring them again gives its eval AP
    ap = stream_ap_by_source(fine.task_rows, score_dataset(fine, list(eval_dataset(
        files["eval"], examples_decoder(tft_out, files["eval"]), max_examples=base.max_eval_examples))))
    for s in base.train_sources:
        assert ap[s] == pytest.approx(fine.selected["eval_ap"][s], rel=1e-5)


def test_weight_averaging_scores_and_restores_the_average_and_leaves_the_training_alone(transformed):
    """With `weight_average`, every evaluation (refinement's too) scores Adam's moving average of the
    weights and the restored checkpoint is an average; the training itself goes on from the trained
    weights, so its losses are those of a training without averaging."""
    from models.evaluate import score_dataset, stream_ap_by_source
    from models.sampling import eval_dataset

    tft_out, files, graph_dir = transformed
    base = preset("unified", **FAST).replace(train_steps=12, eval_every_steps=4, early_stopping_patience=0,
                                             checkpoint_refine_steps=2)
    plain = train(base.replace(weight_average=0.0), tft_out, files["train"], files["eval"], verbose=False)
    averaged = train(base.replace(weight_average=0.5), tft_out, files["train"], files["eval"], verbose=False)
    assert averaged.optimizer.use_ema and not plain.optimizer.use_ema
    assert averaged.history.history["loss"] == pytest.approx(plain.history.history["loss"], rel=1e-5)
    keys = [f"val_stream_ap_{s}" for s in base.train_sources]
    assert any(averaged.history.history[k] != pytest.approx(plain.history.history[k], rel=1e-6) for k in keys)
    ap = stream_ap_by_source(averaged.task_rows, score_dataset(averaged, list(eval_dataset(
        files["eval"], examples_decoder(tft_out, files["eval"]), max_examples=base.max_eval_examples))))
    for s in base.train_sources:  # the restored weights are the scored average of the selected step
        assert ap[s] == pytest.approx(averaged.selected["eval_ap"][s], rel=1e-5)
    with pytest.raises(ValueError, match="weight_average must be in"):
        base.replace(weight_average=1.0)


def test_the_weight_average_of_a_short_training_is_corrected_for_its_start(transformed):
    """With a momentum of 0.999, 12 steps leave the raw moving average 98.8% initial weights; corrected
    as Adam corrects its moments, the restored weights moved from the initial ones about as far as the
    trained weights did."""
    import tensorflow as tf

    from models.model import build_model, dummy_features
    from models.preprocessing import cardinalities

    tft_out, files, graph_dir = transformed
    cfg = preset("unified", **FAST).replace(train_steps=12, eval_every_steps=12, early_stopping_patience=0,
                                            checkpoint_refine_steps=0)
    tf.keras.utils.set_random_seed(cfg.seed)  # the initial weights, as train() draws them
    initial = build_model(cfg, cardinalities(tft_out), cfg.tasks())
    initial(dummy_features(), training=False)
    start = initial.get_weights()
    moved = {}
    for momentum in (0.0, 0.999):
        model = train(cfg.replace(weight_average=momentum), tft_out, files["train"], files["eval"], verbose=False)
        moved[momentum] = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(model.get_weights(), start)))
    assert moved[0.0] > 0
    assert 0.25 < moved[0.999] / moved[0.0] < 1.5, moved  # uncorrected: about 0.012
