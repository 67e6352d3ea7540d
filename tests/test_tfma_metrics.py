"""The exact-AP TFMA combiner: every row counts, equal to sklearn on one slice, also when the
accumulators are split and merged, for one model or a candidate and a baseline."""
import pickle

import numpy as np
import pytest
from sklearn.metrics import average_precision_score
from tensorflow_model_analysis.metrics import metric_types

from evaluation.eval_config import make_eval_config
from evaluation.tfma_metrics import EXACT_AP_NAME, _exact_ap
from core.tasks import TASKS


def _inputs(labels, preds, model_names=("",)):
    """One StandardMetricInputs per example, shaped as TFMA hands them over (arrays of one value)."""
    for y, p in zip(labels, preds):
        label = {"promo_stream": np.array([y]), "click": np.array([0])}
        pred = {"promo_stream": np.array([p], np.float32), "click": np.array([0.5], np.float32)}
        if model_names != ("",):
            label = {m: label for m in model_names}
            pred = {m: pred for m in model_names}
        yield metric_types.StandardMetricInputs(labels=label, predictions=pred, example_weights=None)


def _combine(combiner, elements, parts=3):
    """Adds the elements in `parts` accumulators (pickled, as between Beam stages), merges, extracts."""
    accs = [combiner.create_accumulator() for _ in range(parts)]
    for i, e in enumerate(elements):
        accs[i % parts] = combiner.add_input(accs[i % parts], e)
    accs = [pickle.loads(pickle.dumps(a)) for a in accs]
    return combiner.extract_output(combiner.merge_accumulators(accs))


@pytest.mark.parametrize("model_names", [("",), ("candidate", "baseline")])
def test_exact_ap_equals_sklearn_on_every_row(model_names):
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.07).astype(np.int64)
    p = np.clip(rng.random(5000) * 0.5 + 0.3 * y, 0, 1).astype(np.float32)
    p[::7] = 0.25  # ties
    config = make_eval_config(TASKS, {"promotions": 0.1, "ads": 0.1}, 0.01)
    for model in model_names:
        (computation,) = _exact_ap(eval_config=config, model_name=model if model else "", output_name="promo_stream")
        out = _combine(computation.combiner, _inputs(y, p, model_names))
        (key,) = out
        assert key.name == EXACT_AP_NAME and key.output_name == "promo_stream"
        assert out[key] == pytest.approx(average_precision_score(y, p.astype(np.float64)), abs=1e-9)


def test_one_changed_row_changes_the_metric():
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.1, 0.7, 0.2, 0.3, 0.4, 0.05], np.float32)
    (c,) = _exact_ap(output_name="promo_stream")
    before = list(_combine(c.combiner, _inputs(y, p)).values())[0]
    p[7] = 0.95  # a single negative above every positive
    after = list(_combine(c.combiner, _inputs(y, p)).values())[0]
    assert after < before


def test_weighted_examples_use_their_weights():
    y = np.array([1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.3, 0.2, 0.1], np.float32)
    w = np.array([1.0, 3.0, 2.0, 1.0, 1.0])
    (c,) = _exact_ap(output_name="promo_stream", example_weighted=True)
    elements = [metric_types.StandardMetricInputs(labels={"promo_stream": np.array([a])},
                                                  predictions={"promo_stream": np.array([b])},
                                                  example_weights={"promo_stream": np.array([c_])})
                for a, b, c_ in zip(y, p, w)]
    out = list(_combine(c.combiner, elements).values())[0]
    assert out == pytest.approx(average_precision_score(y, p, sample_weight=w), abs=1e-9)


def test_empty_slice_is_nan_and_bad_label_raises():
    (c,) = _exact_ap(output_name="promo_stream")
    assert np.isnan(list(_combine(c.combiner, []).values())[0])
    with pytest.raises(ValueError, match="0 or 1"):
        _combine(c.combiner, _inputs([1, 2], [0.5, 0.4]))


@pytest.mark.parametrize("model_names", [("",), ("candidate", "baseline")])
@pytest.mark.parametrize("name", ["Calibration", "MeanLabel", "MeanPrediction", "CalibrationPlot"])
def test_fast_calibration_metrics_equal_tfma_own(name, model_names):
    """evaluation.tfma_metrics' Calibration / MeanLabel / MeanPrediction / CalibrationPlot read a binary
    head directly; every combiner output and derived value equals TFMA's own class on the same rows."""
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.metrics import calibration as tfma_calibration

    from evaluation import tfma_metrics

    rng = np.random.default_rng(1)
    y = (rng.random(3000) < 0.06).astype(np.int64)
    p = np.clip(rng.random(3000) * 0.3 + 0.4 * y, 0, 1).astype(np.float32)
    config = make_eval_config(TASKS, {"promotions": 0.1, "ads": 0.1}, 0.01)
    kwargs = {"num_buckets": 10} if name == "CalibrationPlot" else {}
    ours, theirs = getattr(tfma_metrics, "Fast" + name)(**kwargs), getattr(tfma, "metrics").__dict__[name](**kwargs)
    for model in model_names:
        args = dict(eval_config=config, model_names=[model], output_names=["promo_stream"])
        fast, slow = ours.computations(**args), theirs.computations(**args)
        assert [type(c) for c in fast] == [type(c) for c in slow]
        fast_combiners = [c.combiner for c in fast if isinstance(c, metric_types.MetricComputation)]
        assert fast_combiners and all(type(c).__module__ == tfma_metrics.__name__ and c._direct
                                      for c in fast_combiners)
        results = []
        for computations in (fast, slow):
            values = {}
            for c in computations:
                if isinstance(c, metric_types.MetricComputation):
                    values.update(_combine(c.combiner, _inputs(y, p, model_names)))
            for c in computations:
                if isinstance(c, metric_types.DerivedMetricComputation):
                    values.update(c.result(values))
            results.append(values)
        fast_values, slow_values = results
        assert fast_values.keys() == slow_values.keys()
        for key, value in slow_values.items():
            if isinstance(value, tfma_calibration._WeightedLabelsPredictionsExamples):
                got = fast_values[key]
                assert (got.total_weighted_labels, got.total_weighted_examples) == \
                    (value.total_weighted_labels, value.total_weighted_examples)
                assert got.total_weighted_predictions == pytest.approx(value.total_weighted_predictions, rel=1e-9)
            elif isinstance(value, list):  # histogram buckets
                assert [b.bucket_id for b in fast_values[key]] == [b.bucket_id for b in value]
                for a, b in zip(fast_values[key], value):
                    assert (a.weighted_labels, a.weighted_examples) == (b.weighted_labels, b.weighted_examples)
                    assert a.weighted_predictions == pytest.approx(b.weighted_predictions, rel=1e-9)
            elif isinstance(value, float):
                assert fast_values[key] == pytest.approx(value, rel=1e-9)
            else:  # a plot proto
                assert _close_protos(fast_values[key], value)
    assert sum(y) > 0


def _close_protos(a, b) -> bool:
    from google.protobuf import json_format
    return _close(json_format.MessageToDict(a), json_format.MessageToDict(b))


def _close(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, z) for x, z in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))
    return a == b


def test_the_eval_config_resolves_to_the_fast_combiners_and_they_read_directly(monkeypatch):
    """Through TFMA's own resolution of the eval config (a registered class name would win over the
    config's module): every calibration combiner is ours, and on binary heads TFMA's general read is
    never called."""
    from tensorflow_model_analysis.metrics import metric_specs, metric_util

    from evaluation import tfma_metrics

    config = make_eval_config(TASKS, {"promotions": 0.1, "ads": 0.1}, 0.01, calibration_band=(0.8, 1.25))
    computations = [c for c in metric_specs.to_computations(config.metrics_specs, eval_config=config)
                    if isinstance(c, metric_types.MetricComputation)]
    kinds = {type(c.combiner) for c in computations}
    assert {tfma_metrics._FastSums, tfma_metrics._FastHistogram, tfma_metrics._ExactAPCombiner} <= kinds
    assert not any(k.__module__.startswith("tensorflow_model_analysis.metrics.calibration") for k in kinds)

    def general_read(*args, **kwargs):
        raise AssertionError("TFMA's general read was used")

    monkeypatch.setattr(metric_util, "to_label_prediction_example_weight", general_read)
    elements = [metric_types.StandardMetricInputs(labels={t.name: np.array([1 - i % 2]) for t in TASKS},
                                                  predictions={t.name: np.array([0.3], np.float32) for t in TASKS},
                                                  example_weights=None) for i in range(10)]
    for c in computations:
        if isinstance(c.combiner, (tfma_metrics._FastSums, tfma_metrics._FastHistogram,
                                   tfma_metrics._ExactAPCombiner)):
            _combine(c.combiner, elements)
