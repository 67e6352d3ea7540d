"""Model selection that does not trade one source for the other: the restored checkpoint, early
stopping and the tuner's objective, on made-up eval scores."""
import itertools

import numpy as np
import pytest

from models.config import ModelConfig, TuningConfig
from models.selection import choose_checkpoint, relative_ap, should_stop, tuning_score

TOL = 0.01


def test_checkpoint_never_restores_a_step_far_below_either_sources_best():
    # the rare-ads KuaiRand case: ads peak early and fall while promotions still rise
    history = [{"promotions": 0.466, "ads": 0.147}, {"promotions": 0.493, "ads": 0.109},
               {"promotions": 0.495, "ads": 0.146}, {"promotions": 0.497, "ads": 0.120}]
    best = choose_checkpoint(history, TOL)
    assert best == 2  # both within 1% of their best; the mean rule alone would also pick 2 or 1
    # with no step within tolerance on both, the one whose worse source is closest to its best
    history = [{"promotions": 0.40, "ads": 0.20}, {"promotions": 0.50, "ads": 0.10}, {"promotions": 0.46, "ads": 0.19}]
    assert choose_checkpoint(history, TOL) == 2


def test_checkpoint_prefers_the_best_mean_among_steps_within_tolerance():
    history = [{"promotions": 0.300, "ads": 0.100}, {"promotions": 0.298, "ads": 0.120},
               {"promotions": 0.301, "ads": 0.121}, {"promotions": 0.250, "ads": 0.122}]
    assert choose_checkpoint(history, TOL) == 2
    one_source = [{"promotions": 0.1}, {"promotions": 0.3}, {"promotions": 0.2}]
    assert choose_checkpoint(one_source, TOL) == 1


def test_early_stopping_waits_while_any_source_improves():
    rising_ads = [{"promotions": 0.30, "ads": 0.10}, {"promotions": 0.29, "ads": 0.11},
                  {"promotions": 0.28, "ads": 0.12}]
    assert not should_stop(rising_ads, patience=2)
    flat = rising_ads + [{"promotions": 0.27, "ads": 0.11}, {"promotions": 0.26, "ads": 0.11}]
    assert should_stop(flat, patience=2)
    assert not should_stop(flat[:2], patience=2)


def test_early_stopping_ignores_a_new_best_within_min_delta():
    """A reference training of make run's: promotions 0.2317 at step 400, 0.2318 at step 600 (+0.04%)."""
    history = [{"promotions": v} for v in (0.1927, 0.2204, 0.2296, 0.2317, 0.2315, 0.2318, 0.2187)]
    assert not should_stop(history, patience=3)  # step 600 is a new best: 300 steps more
    assert should_stop(history, patience=3, min_delta=0.002)
    assert not should_stop(history[:6], patience=3, min_delta=0.002)
    creeping = [{"promotions": 0.2300 * (1.001 ** k)} for k in range(8)]  # +0.3% over three evaluations
    assert not should_stop(creeping, patience=3, min_delta=0.002)
    assert should_stop(creeping, patience=3, min_delta=0.004)


def test_objective_never_prefers_a_model_that_loses_a_source_beyond_the_tolerance():
    reference = {"promotions": 0.40, "ads": 0.20}
    rng = np.random.default_rng(0)
    models = [{"promotions": 0.40 * r1, "ads": 0.20 * r2} for r1, r2 in rng.uniform(0.8, 1.6, (300, 2))]
    models += [{"promotions": 0.40 * 0.99, "ads": 0.20}, {"promotions": 0.40 * 0.9899, "ads": 0.20 * 3}]
    for a, b in itertools.product(models, repeat=2):
        ok_a = min(relative_ap(a, reference).values()) >= 1 - TOL
        ok_b = min(relative_ap(b, reference).values()) >= 1 - TOL
        if ok_a and not ok_b:
            assert tuning_score(a, reference, TOL) > tuning_score(b, reference, TOL)
    # among models within tolerance, a better one on ads wins
    assert tuning_score({"promotions": 0.40, "ads": 0.30}, reference, TOL) > \
        tuning_score({"promotions": 0.41, "ads": 0.21}, reference, TOL)
    # a missing (NaN) AP counts as a total loss on that source
    assert tuning_score({"promotions": 0.5, "ads": float("nan")}, reference, TOL) < 0


def test_temperature_shares_run_from_equal_to_natural():
    counts = {"promotions": 90_000, "ads": 10_000}
    assert ModelConfig(source_alpha=0.0).shares(counts) == pytest.approx({"promotions": 0.5, "ads": 0.5})
    assert ModelConfig(source_alpha=1.0).shares(counts) == pytest.approx({"promotions": 0.9, "ads": 0.1})
    half = ModelConfig(source_alpha=0.5).shares(counts)
    assert half["ads"] == pytest.approx(100 / (300 + 100))
    with pytest.raises(ValueError, match="counts"):
        ModelConfig(source_alpha=0.5).shares()
    with pytest.raises(ValueError, match="source_alpha"):
        ModelConfig(source_alpha=1.5)


def test_tuned_values_apply_to_the_model_config():
    cfg = ModelConfig().with_hyperparameters({"source_alpha": 0.75, "encoder_units": "128,64", "learning_rate": 3e-3,
                                              "not_a_field": 1})
    assert cfg.source_alpha == 0.75 and cfg.encoder_units == (128, 64) and cfg.learning_rate == 3e-3
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    assert TuningConfig.from_json(TuningConfig(trials=5).to_json()).trials == 5
    with pytest.raises(ValueError):
        TuningConfig(trials=-1)
