"""The Evaluator's TFMA config, derived from the task rows a model has.

Metrics per head: exact AP (gating), example count and mean label (the slice's positives), sliced
by source and by source x podcast popularity bucket (no overall slice: AP pooled over the two sources
judges no head, and it cost a third of TFMA's per-example metric work; docs/results/performance.md). Blessing: for each source, the
stream AP of that source's stream head on that source's impressions must reach a floor and
must not fall more than `tolerance` (relative) below the baseline model's on the same slice.

Calibration, per stream head on the source it is judged on: TFMA's `Calibration` (mean prediction
/ mean label), `MeanPrediction`, `MeanLabel` and `CalibrationPlot` (`CALIBRATION_BUCKETS` equal-width
buckets, from which `pipeline/run_summary.py` computes the expected calibration error: TFMA has
none). With a `calibration_band` (default 0.8 to 1.25), a candidate is blessed only when its
`Calibration` on each source's slice is inside the band.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import tensorflow_model_analysis as tfma
from google.protobuf import wrappers_pb2

from core.fields import SOURCES
from core.serving import SERVING_DEFAULT
from core.tasks import Task, stream_head

SLICES = (tfma.SlicingSpec(feature_keys=["source"]), tfma.SlicingSpec(feature_keys=["source", "popularity_bucket"]))


def evaluation_features(tasks: Sequence[Task]) -> Tuple[str, ...]:
    """The features the Evaluator must decode: the slicing features and each head's label (the
    model's `serving_default` parses the serialized example itself). Decoding only these instead of
    the 31 columns: the Evaluator -14% CPU on the default logs (docs/results/performance.md)."""
    names = {k for spec in SLICES for k in spec.feature_keys} | {t.label for t in tasks}
    return tuple(sorted(names))


def _gate(source: str, floor: float, tolerance: Optional[float]) -> tfma.PerSliceMetricThreshold:
    change = None if tolerance is None else tfma.GenericChangeThreshold(
        direction=tfma.MetricDirection.HIGHER_IS_BETTER, relative={"value": -tolerance})
    return tfma.PerSliceMetricThreshold(
        slicing_specs=[tfma.SlicingSpec(feature_values={"source": source})],
        threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": floor}),
                                       change_threshold=change))


CALIBRATION_BUCKETS = 10
# TFMA's metrics with a direct read of a binary head's label and prediction (same names and outputs;
# most of the Evaluator's CPU time went to TFMA's general read; evaluation/tfma_metrics.py)
FAST = "evaluation.tfma_metrics"
DEFAULT_CALIBRATION_BAND = (0.8, 1.25)


def _band(source: str, band: Tuple[float, float]) -> tfma.PerSliceMetricThreshold:
    return tfma.PerSliceMetricThreshold(
        slicing_specs=[tfma.SlicingSpec(feature_values={"source": source})],
        threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
            lower_bound={"value": band[0]}, upper_bound={"value": band[1]})))


def calibration_metrics(sources: Sequence[str], band: Optional[Tuple[float, float]]) -> list:
    """TFMA's calibration metrics of one stream head; `band` gates `Calibration` on `sources`."""
    return [tfma.MetricConfig(class_name="FastCalibration", module=FAST,
                              per_slice_thresholds=[_band(s, band) for s in sources] if band else []),
            tfma.MetricConfig(class_name="FastMeanPrediction", module=FAST),
            tfma.MetricConfig(class_name="FastMeanLabel", module=FAST),
            tfma.MetricConfig(class_name="FastCalibrationPlot", module=FAST,
                              config=f'"num_buckets": {CALIBRATION_BUCKETS}')]


def make_eval_config(tasks: Sequence[Task], floors: Dict[str, float], tolerance: Optional[float],
                     sources: Sequence[str] = SOURCES,
                     calibration_band: Optional[Tuple[float, float]] = DEFAULT_CALIBRATION_BAND) -> tfma.EvalConfig:
    """`tolerance` None: no comparison with a baseline (a single model); `calibration_band` None:
    calibration measured, not gated."""
    gated = {}
    for source in sources:
        gated.setdefault(stream_head(tasks, source), []).append(source)
    specs = []
    for t in tasks:
        # Thresholds of a TFMA (post-export) metric belong on its MetricConfig: spec-level
        # per_slice_thresholds are keyed for in-graph metrics and would never match.
        exact_ap = tfma.MetricConfig(class_name="ExactAveragePrecision", module=FAST,
                                     per_slice_thresholds=[_gate(s, floors[s], tolerance)
                                                           for s in gated.get(t.name, [])])
        # MeanLabel x ExampleCount: the positives of each slice, shown by the run report (a stream
        # head has it among its calibration metrics)
        metrics = [exact_ap]
        if t.name in gated:  # a stream head: calibration on the sources it is judged on
            metrics += calibration_metrics(gated[t.name], calibration_band)
        else:
            metrics.append(tfma.MetricConfig(class_name="FastMeanLabel", module=FAST))
        specs.append(tfma.MetricsSpec(output_names=[t.name], metrics=metrics))
    specs.append(tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="ExampleCount")]))  # per slice
    return tfma.EvalConfig(
        # tf_generic: TFMA calls the signature and never loads the model as Keras (it would load each
        # model once more only to find its type; the exports carry no Keras layer traces, models/export.py)
        model_specs=[tfma.ModelSpec(signature_name=SERVING_DEFAULT, model_type=tfma.TF_GENERIC,
                                    label_keys={t.name: t.label for t in tasks})],
        slicing_specs=list(SLICES), metrics_specs=specs,
        # The model's compiled Keras metrics are not evaluated (TFMA cannot feed a multi-output model's
        # compiled metrics); every metric is declared above, per head.
        options=tfma.Options(include_default_metrics=wrappers_pb2.BoolValue(value=False)))
