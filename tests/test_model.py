"""The multi-task model: masked losses, per-head normalisation, presets, the task table."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from models.config import ENCODER_FAMILIES, PRESETS, ModelConfig, preset
from core.fields import LIST_LENGTH, SOURCES
from models.model import CATEGORICAL_INPUTS, LIST_INPUTS, NUMERIC_INPUTS, build_model
from core.tasks import TASKS, Task, stream_head

PROMO, ADS = SOURCES.index("promotions"), SOURCES.index("ads")
CARD = {table: 50 for _, table in CATEGORICAL_INPUTS}
CARD.update(hour=24, weekday=7, source=len(SOURCES))
SMALL = ModelConfig(encoder_units=(16,), tower_units=(8,), embedding_dim=4, list_embedding_dim=4, dropout=0.0)


def batch(sources, seed=0):
    rng = np.random.default_rng(seed)
    n = len(sources)
    out = {name: tf.constant(rng.integers(0, 7 if name == "weekday" else 24 if name == "hour" else 50, n), tf.int64)
           for name, _ in CATEGORICAL_INPUTS if name not in LIST_INPUTS}
    out.update({name: tf.constant(rng.integers(0, 50, (n, LIST_LENGTH)), tf.int64) for name in LIST_INPUTS})
    out.update({name: tf.constant(rng.normal(size=n), tf.float32) for name in NUMERIC_INPUTS})
    out["source"] = tf.constant(sources, tf.int64)
    for label in ("stream", "click", "like", "follow"):
        out[label] = tf.constant(rng.integers(0, 2, n), tf.int64)
    return out


def mask_table(tasks=TASKS):
    """{task: {source: trains?}}, the declared mask as a plain table."""
    return {t.name: {s: s in t.trained_by for s in SOURCES} for t in tasks}


def test_mask_table_is_the_declared_direction():
    table = mask_table()
    assert table["promo_stream"] == {"promotions": True, "ads": False}
    for task in ("ad_stream", "click", "like", "follow"):
        assert table[task] == {"promotions": True, "ads": True}
    assert stream_head(TASKS, "promotions") == "promo_stream" and stream_head(TASKS, "ads") == "ad_stream"


def test_masked_examples_give_zero_gradient_to_the_masked_tower():
    model = build_model(SMALL, CARD, SMALL.tasks())
    ads_only = batch([ADS] * 32)
    model(ads_only)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(ads_only, training=True)
    tower = model.towers["promo_stream"].trainable_variables
    grads = tape.gradient(loss, tower + model.towers["ad_stream"].trainable_variables)
    for g in grads[:len(tower)]:
        assert g is None or float(tf.reduce_max(tf.abs(g))) == 0.0
    assert any(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads[len(tower):])


def _head_only_weights(model, head):
    """Weights that feed only `head`: its tower, and in a gated family its gate and own experts."""
    out = list(model.towers[head].trainable_variables)
    if model.family != "shared_bottom":
        out += model.gates[head].trainable_variables
        for expert in model.task_experts[head]:
            out += expert.trainable_variables
    return out


@pytest.mark.parametrize("family", ENCODER_FAMILIES)
def test_masked_examples_give_zero_gradient_to_the_masked_head_in_every_family(family):
    cfg = SMALL.replace(encoder_family=family, experts=2, task_experts=1, cross_layers=1, dot_interaction=True)
    model = build_model(cfg, CARD, cfg.tasks())
    ads_only = batch([ADS] * 32)
    model(ads_only)
    masked = _head_only_weights(model, "promo_stream")
    if family == "ple":
        assert len(masked) > len(model.towers["promo_stream"].trainable_variables) + 2  # gate and own expert
    trained = _head_only_weights(model, "ad_stream")
    with tf.GradientTape() as tape:
        loss = model.compute_loss(ads_only, training=True)
    grads = tape.gradient(loss, masked + trained)
    for g in grads[:len(masked)]:
        assert g is None or float(tf.reduce_max(tf.abs(g))) == 0.0
    assert all(g is not None for g in grads[len(masked):])
    assert any(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads[len(masked):])


def test_unknown_encoder_family_is_refused():
    with pytest.raises(ValueError, match="encoder_family"):
        ModelConfig(encoder_family="moe")


def test_masked_examples_do_not_change_the_masked_head_loss():
    # Adding ads impressions to a promotions batch leaves the promo_stream loss unchanged.
    model = build_model(SMALL, CARD, SMALL.tasks())
    promos = batch([PROMO] * 16, seed=1)
    mixed = {k: tf.concat([v, batch([ADS] * 16, seed=2)[k]], 0) for k, v in promos.items()}
    model(promos)

    def head_loss(features):
        logits = model(features)
        w = model.head_weights(features["source"])["promo_stream"]
        bce = tf.keras.losses.binary_crossentropy(tf.cast(features["stream"], tf.float32)[:, None],
                                                  logits["promo_stream"][:, None], from_logits=True)
        return float(tf.reduce_sum(w * bce))

    assert head_loss(mixed) == pytest.approx(head_loss(promos), rel=1e-6)


def test_head_loss_is_the_mean_over_unmasked_examples_and_zero_when_all_masked():
    model = build_model(SMALL, CARD, SMALL.tasks())
    b = batch([PROMO] * 3 + [ADS] * 5)
    w = model.head_weights(b["source"])
    assert float(tf.reduce_sum(w["promo_stream"])) == pytest.approx(1.0)
    np.testing.assert_allclose(w["promo_stream"].numpy(), [1 / 3] * 3 + [0] * 5)
    np.testing.assert_allclose(w["ad_stream"].numpy(), [1 / 8] * 8)
    all_ads = model.head_weights(tf.constant([ADS] * 4, tf.int64))
    assert float(tf.reduce_sum(all_ads["promo_stream"])) == 0.0
    loss = model.compute_loss(batch([ADS] * 4), training=True)
    assert np.isfinite(float(loss))
    assert float(model.head_losses["promo_stream"].result()) == 0.0


def test_no_mask_trains_every_head_with_every_source():
    cfg = preset("unified_no_mask")
    assert all(set(t.trained_by) == set(SOURCES) for t in cfg.tasks())
    assert {t.name: t.trained_by for t in preset("unified").tasks()} == {t.name: t.trained_by for t in TASKS}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_resolve_to_rows_of_the_table(name):
    cfg = preset(name)
    tasks = cfg.tasks()
    assert [t.name for t in tasks] == [t.name for t in TASKS if t.name in cfg.heads]
    for source in SOURCES:  # every preset can be scored on both sources
        assert stream_head(tasks, source) in cfg.heads


def test_config_round_trips_through_json():
    cfg = preset("ads_only_ancillary", train_steps=7)
    assert ModelConfig.from_json(cfg.to_json()) == cfg


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="mix"):
        ModelConfig(mix="half")
    with pytest.raises(ValueError, match="not in the task table"):
        ModelConfig(heads=("nope",)).tasks()
    with pytest.raises(ValueError, match="unknown label"):
        Task("x", "dwell", ("ads",))
    with pytest.raises(ValueError, match="unknown preset"):
        preset("best")


def test_a_new_row_adds_a_head():
    table = TASKS + (Task("ad_click", "click", ("ads",)),)
    cfg = dataclasses.replace(SMALL, heads=tuple(t.name for t in table))
    model = build_model(cfg, CARD, cfg.tasks(table))
    out = model(batch([ADS, PROMO]))
    assert set(out) == {t.name for t in table}
    np.testing.assert_allclose(model.head_weights(tf.constant([ADS, PROMO], tf.int64))["ad_click"].numpy(), [1, 0])


def test_score_dataset_keeps_heads_and_labels_apart():
    """The heads click / like / follow have their labels' names: each array is one value per row."""
    from models.evaluate import score_dataset, stream_ap_by_source

    model = build_model(SMALL, CARD, TASKS)
    batches = [batch([PROMO, ADS, ADS, PROMO], seed=1), batch([ADS, PROMO, PROMO], seed=2)]
    scored = score_dataset(model, batches)
    for head in ("click", "like", "follow", "promo_stream"):
        probs = scored.predictions[head]
        assert probs.shape == (7,) and ((probs > 0) & (probs < 1)).all()
    for label in ("stream", "click", "like", "follow"):
        assert scored.labels[label].shape == (7,) and set(np.unique(scored.labels[label])) <= {0, 1}
    expected = np.concatenate([tf.sigmoid(model(b)["click"]).numpy() for b in batches])
    np.testing.assert_allclose(scored.predictions["click"], expected, rtol=1e-6)
    np.testing.assert_array_equal(scored.labels["click"], np.concatenate([b["click"].numpy() for b in batches]))
    assert set(stream_ap_by_source(TASKS, scored)) == set(SOURCES)


def test_tuner_searches_the_families_and_interactions_and_its_best_values_reach_the_trainer():
    import json

    from models.config import MODEL_CONFIG_KEY
    from models.trainer import config_from_custom
    from models.tuning import search_space

    hp = search_space(ModelConfig())
    assert set(hp.get_config()["space"][[p["config"]["name"] for p in hp.get_config()["space"]].index(
        "encoder_family")]["config"]["values"]) == set(ENCODER_FAMILIES)
    names = {p["config"]["name"] for p in hp.get_config()["space"]}
    assert {"encoder_family", "target_interactions", "dot_interaction", "cross_layers", "embedding_l2",
            "optional_inputs"} <= names
    best = {"encoder_family": "ple", "target_interactions": False, "cross_layers": 1, "encoder_units": "128,64",
            "dot_interaction": True, "optional_inputs": False}
    custom = {MODEL_CONFIG_KEY: preset("unified").to_json()}
    cfg = config_from_custom(custom, train_steps=50, hyperparameters={"values": best})
    assert (cfg.encoder_family, cfg.target_interactions, cfg.cross_layers, cfg.encoder_units, cfg.dot_interaction,
            cfg.optional_inputs) == ("ple", False, 1, (128, 64), True, False)
    assert ModelConfig.from_json(cfg.to_json()) == cfg and json.loads(cfg.to_json())["encoder_family"] == "ple"


def test_optional_inputs_off_leaves_the_attributes_out_and_the_tuner_tries_both():
    from core.fields import OPTIONAL_NAMES
    from models.tuning import _DefaultsFirst, search_space

    data = batch([PROMO, ADS] * 8)
    other = dict(data, **{n: (data[n] + 1) % 5 if data[n].dtype == tf.int64 else data[n] + 1.0
                          for n in OPTIONAL_NAMES})
    for on in (True, False):
        tf.keras.utils.set_random_seed(0)
        model = build_model(SMALL.replace(optional_inputs=on), CARD, SMALL.tasks())
        a, b = model(data), model(other)
        moved = max(float(tf.reduce_max(tf.abs(a[h] - b[h]))) for h in a)
        looked_up = {name for name, _ in model.categorical}
        if on:
            assert moved > 1e-4 and {"user_activity_level", "episode_format"} <= looked_up
        else:  # no embedding looked up for them, and the outputs do not read them
            assert moved == 0.0 and not looked_up & set(OPTIONAL_NAMES)
    import keras_tuner

    def points(name):
        oracle = _DefaultsFirst(objective=keras_tuner.Objective("x", "max"), max_trials=3,
                                hyperparameters=search_space(preset(name)))
        return [(p["source_alpha"], p["optional_inputs"]) for p in oracle._starting_points()]

    assert points("unified") == [(1.0, True), (0.5, True), (1.0, False)]  # natural by default: then half way
    assert points("unified_balanced") == [(0.0, True), (1.0, True), (0.0, False)]
    assert "source_alpha" not in search_space(preset("promotions_baseline")).values  # one source: no mix


def test_traced_scoring_equals_eager_and_follows_the_weights():
    """models.evaluate.TracedScorer (what the Trainer scores its eval split with from the second
    evaluation on): the eager probabilities, one trace for batches of 32 and 7 rows, the current
    weights after they change."""
    from models.evaluate import TracedScorer, score_dataset

    cfg = SMALL.replace(encoder_family="ple", experts=2, task_experts=1)
    model = build_model(cfg, CARD, cfg.tasks())
    batches = [batch([PROMO, ADS] * 16, seed=1), batch([ADS] * 7, seed=2)]
    scorer = TracedScorer(model)
    eager, traced = score_dataset(model, batches), score_dataset(model, batches, scorer)
    for head in model.towers:
        np.testing.assert_allclose(traced.predictions[head], eager.predictions[head], rtol=1e-5, atol=1e-6)
    score_dataset(model, batches, scorer)
    assert scorer._fn.experimental_get_tracing_count() == 1
    model.set_weights([w * 0.5 for w in model.get_weights()])
    changed, again = score_dataset(model, batches), score_dataset(model, batches, scorer)
    assert not np.allclose(changed.predictions["promo_stream"], eager.predictions["promo_stream"])
    for head in model.towers:
        np.testing.assert_allclose(again.predictions[head], changed.predictions[head], rtol=1e-5, atol=1e-6)
