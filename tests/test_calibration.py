"""Calibration per source: the correction served inside the model, the ECE, and the Evaluator's gate
(TFMA's Calibration metric within the band) on a candidate that ranks well but is off by a factor."""
import numpy as np
import pandas as pd
import pytest

from core.fields import SOURCES
from core.tasks import TASKS
from models.calibration import (apply_offset, calibration_report, expected_calibration_error, fit_offset,
                                fit_offsets)
from models.evaluate import Scored


def _logs(n=6000, seed=0):
    """Per source: true stream probabilities and labels drawn from them (calibrated by construction)."""
    rng = np.random.default_rng(seed)
    source = rng.integers(0, len(SOURCES), n)
    p = np.clip(rng.beta(0.6, 12, n) * np.where(source == SOURCES.index("ads"), 0.6, 1.0), 1e-4, 0.95)
    return source, p, (rng.random(n) < p).astype(np.int64)


def test_ece_is_zero_for_bucket_means_and_large_for_a_factor():
    assert expected_calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.0)
    assert expected_calibration_error([0, 0, 0, 1], [0.05, 0.05, 0.05, 0.95]) == pytest.approx(0.05)
    source, p, y = _logs()
    assert expected_calibration_error(y, np.clip(2 * p, 0, 1)) > 3 * expected_calibration_error(y, p)


def test_offsets_fitted_on_one_split_calibrate_a_head_off_by_a_factor_on_another():
    source, p, y = _logs(n=40000, seed=1)
    doubled = np.clip(2 * p, 0, 0.999)  # ranks as well as p, predicts twice the rate
    scored = Scored(predictions={"promo_stream": doubled, "ad_stream": doubled}, labels={"stream": y},
                    source=source, prior_impressions=np.zeros(0))
    offsets = fit_offsets(scored, TASKS)
    assert set(offsets) == {"promo_stream", "ad_stream"} and all(v < 0 for h in offsets.values() for v in h.values())
    report = calibration_report(scored, TASKS, offsets)
    for s in SOURCES:
        assert report[s]["calibration"] > 1.6  # off by about 2
        assert report[s]["calibration_corrected"] == pytest.approx(1.0, abs=1e-6)
        assert report[s]["ece_corrected"] < report[s]["ece"] / 2
    # on a fresh draw (the test split), the correction still holds within the band
    source2, p2, y2 = _logs(n=40000, seed=2)
    for s in SOURCES:
        rows = source2 == SOURCES.index(s)
        head = "promo_stream" if s == "promotions" else "ad_stream"
        q = apply_offset(np.clip(2 * p2[rows], 0, 0.999), offsets[head][s])
        assert 0.8 < q.mean() / y2[rows].mean() < 1.25


def test_the_served_offsets_apply_per_source_inside_the_graph():
    import tensorflow as tf

    from models.export import source_offsets

    shift = source_offsets(tf.constant([["ads"], ["promotions"], ["ads"]]), {"ads": -0.5, "promotions": 0.25})
    assert shift.numpy().reshape(-1).tolist() == [-0.5, 0.25, -0.5]
    assert fit_offset(np.array([0.2, 0.2]), np.array([0, 1])) == pytest.approx(np.log(0.5 / 0.5) - np.log(0.2 / 0.8))


def _evaluate(tmp_path, factor):
    """TFMA on a DataFrame of predictions (no model; `analyze_raw_data` takes one prediction column):
    the Evaluator's calibration metrics of a stream head and their gate per source, default band."""
    import tensorflow_model_analysis as tfma

    from evaluation.eval_config import DEFAULT_CALIBRATION_BAND, SLICES, calibration_metrics

    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(prediction_key="p", label_key="stream")], slicing_specs=list(SLICES[:1]),  # by source
        metrics_specs=[tfma.MetricsSpec(metrics=calibration_metrics(SOURCES, DEFAULT_CALIBRATION_BAND))])
    source, p, y = _logs(n=20000, seed=3)
    frame = pd.DataFrame({"source": [SOURCES[i] for i in source], "stream": y, "p": np.clip(factor * p, 0, 0.999)})
    out = str(tmp_path / f"x{factor}")
    tfma.analyze_raw_data(frame, config, output_path=out)
    return tfma.load_validation_result(out), tfma.load_eval_result(out), out, frame


@pytest.mark.slow
def test_a_well_ranked_candidate_off_by_a_factor_of_two_is_not_blessed(tmp_path):
    from pipeline.run_summary import per_source_calibration

    calibrated, result, out, frame = _evaluate(tmp_path, 1.0)
    assert calibrated.validation_ok, calibrated
    by_source = {k[0][1]: m[""][""] for k, m in result.slicing_metrics if len(k) == 1}
    for s in SOURCES:
        assert 0.9 < by_source[s]["calibration"]["doubleValue"] < 1.1
        assert by_source[s]["mean_prediction"]["doubleValue"] == pytest.approx(
            by_source[s]["calibration"]["doubleValue"] * by_source[s]["mean_label"]["doubleValue"], rel=1e-6)
    # the ECE the run summary computes from TFMA's CalibrationPlot buckets is the ECE of the rows
    for s, c in per_source_calibration(out).items():
        rows = frame[frame.source == s]
        assert c[""]["ece"] == pytest.approx(expected_calibration_error(rows.stream, rows.p), rel=1e-6)
        assert c[""]["calibration"] == pytest.approx(rows.p.mean() / rows.stream.mean(), rel=1e-6)
    doubled, _, out2, frame2 = _evaluate(tmp_path, 2.0)
    for s, c in per_source_calibration(out2).items():
        rows = frame2[frame2.source == s]
        ece = expected_calibration_error(rows.stream, rows.p)
        assert c[""]["ece"] == pytest.approx(ece, rel=1e-6) and ece > 0.02
    assert not doubled.validation_ok
    failed = {(f.metric_key.name, s.slice_key.single_slice_keys[0].bytes_value.decode())
              for s in doubled.metric_validations_per_slice for f in s.failures}
    assert failed == {("calibration", source) for source in SOURCES}, failed
