"""Exact (step-wise) Average Precision as a TFMA metric, usable in slices and thresholds.

TFMA's own `AUCPrecisionRecall` is an interpolated PR-AUC over buckets; this metric keeps every
(label, prediction[, weight]) of the slice and computes `core.ap.average_precision`, which
equals sklearn's `average_precision_score`. Every row of the slice counts: nothing is sampled.

TFMA calls the combiner once per example, slice and head, so `add_input` is the hot loop of the
Evaluator: it reads the head's label and prediction straight from the example's dicts (a binary
head has one value each) and appends them to typed arrays (`array.array`, 8 bytes a value,
pickled as one buffer between Beam stages), with no weight stored when examples are unweighted.
Any other shape of input (sub keys, aggregation, class weights, label or prediction keys, more
than one value) goes through TFMA's general `to_label_prediction_example_weight`, as before.
"""
from __future__ import annotations

import threading
from array import array
from collections.abc import Mapping
from typing import Dict, Iterable, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import calibration as tfma_calibration
from tensorflow_model_analysis.metrics import calibration_histogram
from tensorflow_model_analysis.metrics import calibration_plot as tfma_calibration_plot
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2

from core.ap import average_precision

EXACT_AP_NAME = "exact_average_precision"


class ExactAveragePrecision(metric_types.Metric):
    def __init__(self, name: str = EXACT_AP_NAME):
        super().__init__(metric_util.merge_per_key_computations(_exact_ap), name=name)


metric_types.register_metric(ExactAveragePrecision)


def _exact_ap(name: str = EXACT_AP_NAME, eval_config: Optional[config_pb2.EvalConfig] = None,
              model_name: str = "", output_name: str = "", sub_key=None, aggregation_type=None,
              class_weights=None, example_weighted: bool = False) -> metric_types.MetricComputations:
    key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name, sub_key=sub_key,
                                 example_weighted=example_weighted)
    return [metric_types.MetricComputation(
        keys=[key], preprocessors=None,
        combiner=_ExactAPCombiner(key, eval_config, aggregation_type, class_weights, example_weighted))]


class _Missing:
    pass


def _lookup(value, model_name: str, output_name: str):
    """The head's value in a StandardMetricInputs label / prediction: {model: {output: v}},
    {output: v} or v. _Missing when it is not there (the general path then decides)."""
    if isinstance(value, Mapping) and model_name:
        value = value.get(model_name, value)
    if isinstance(value, Mapping):
        if not output_name:
            return _Missing
        value = value.get(output_name, _Missing)
    return value


def _single(value) -> Optional[float]:
    """The one number of a scalar or size-1 array; None otherwise."""
    if value is _Missing or value is None:
        return None
    if isinstance(value, np.ndarray):
        return float(value.flat[0]) if value.size == 1 else None
    if isinstance(value, (float, int, np.number)):
        return float(value)
    return None


def _direct_read_applies(key, eval_config, aggregation_type, class_weights, example_weighted) -> bool:
    """Whether TFMA's lookup of a head's label and prediction would be a plain dict access."""
    specs = eval_config.model_specs if eval_config else ()
    return (key.sub_key is None and aggregation_type is None and not class_weights
            and not example_weighted and not any(s.prediction_key or s.label_key for s in specs))


_last = threading.local()  # the last example read on this thread and its heads' pairs


def _direct_pair(element, key):
    """(label, prediction) of a binary head read straight from the example; None: use TFMA's path.
    TFMA hands one example to every combiner of a slice in turn (exact AP, calibration sums,
    histogram, for each model and head), and `element.labels` rebuilds its dict on each access: the
    pairs of the last example are kept (the example itself is held, so its identity is not reused)."""
    if getattr(_last, "element", None) is not element:
        _last.element, _last.labels, _last.predictions, _last.pairs = \
            element, element.labels, element.predictions, {}
    where = (key.model_name, key.output_name)
    pair = _last.pairs.get(where, _Missing)
    if pair is _Missing:
        label = _single(_lookup(_last.labels, *where))
        pred = None if label is None else _single(_lookup(_last.predictions, *where))
        pair = _last.pairs[where] = None if pred is None else (label, pred)
    return pair


class _ExactAPCombiner(beam.CombineFn):
    def __init__(self, key, eval_config, aggregation_type, class_weights, example_weighted):
        self._key = key
        self._eval_config = eval_config
        self._aggregation_type = aggregation_type
        self._class_weights = class_weights
        self._example_weighted = example_weighted
        self._direct = _direct_read_applies(key, eval_config, aggregation_type, class_weights, example_weighted)

    def create_accumulator(self):
        return (array("d"), array("d"), array("d"))  # labels, predictions, weights (empty: all 1)

    def add_input(self, acc, element):
        labels, preds, weights = acc
        if self._direct and not weights:
            pair = _direct_pair(element, self._key)
            if pair is not None:
                labels.append(pair[0])
                preds.append(pair[1])
                return acc
        for label, prediction, weight in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._key.model_name,
                output_name=self._key.output_name, aggregation_type=self._aggregation_type,
                class_weights=self._class_weights, example_weighted=self._example_weighted):
            if not weights and len(labels):
                weights.extend([1.0] * len(labels))  # weights are kept once any is read
            labels.append(float(np.asarray(label).ravel()[0]))
            preds.append(float(np.asarray(prediction).ravel()[0]))
            weights.append(float(np.asarray(weight).ravel()[0]))
        return acc

    def merge_accumulators(self, accumulators: Iterable):
        out = self.create_accumulator()
        for labels, preds, weights in accumulators:
            if weights and not out[2]:
                out[2].extend([1.0] * len(out[0]))
            if out[2] and not weights:
                out[2].extend([1.0] * len(labels))
            else:
                out[2].extend(weights)
            out[0].extend(labels)
            out[1].extend(preds)
        return out

    def extract_output(self, acc) -> Dict[metric_types.MetricKey, float]:
        labels, preds, weights = acc
        if not labels:
            return {self._key: float("nan")}
        y = np.frombuffer(labels, dtype=np.float64)
        s = np.frombuffer(preds, dtype=np.float64)
        w = np.frombuffer(weights, dtype=np.float64) if weights else None
        return {self._key: average_precision(y, s, w)}



# TFMA's calibration metrics with the same fast read. Profiled on `make run`'s Evaluator (92k test
# examples, two models x five heads, three slicings; bench/evaluator.py): 65% of its CPU went to
# `metric_util.to_label_prediction_example_weight` inside TFMA's `Calibration` / `MeanLabel` /
# `MeanPrediction` combiner (46%) and `CalibrationPlot`'s histogram combiner (21%), for one label and
# one prediction a head. The classes below are TFMA's own metrics (names, keys, thresholds, derived
# computations and outputs unchanged) whose combiners read a binary head's two numbers directly and
# hand every other shape of input to TFMA's code; the eval config names them by this module. Their
# class names differ from TFMA's: TFMA resolves a registered class name before a config's module.


class _FastSums(tfma_calibration._WeightedLabelsPredictionsExamplesCombiner):
    """Total labels, predictions and examples (TFMA's combiner), read directly when unweighted."""

    def add_input(self, accumulator, element):
        if self._direct:
            pair = _direct_pair(element, self._key)
            if pair is not None:  # TFMA: weight 1.0, label and prediction as floats
                accumulator.total_weighted_examples += 1.0
                accumulator.total_weighted_labels += pair[0]
                accumulator.total_weighted_predictions += pair[1]
                return accumulator
        return super().add_input(accumulator, element)


class _FastHistogram(calibration_histogram._CalibrationHistogramCombiner):
    """TFMA's calibration histogram, read directly when unweighted and bucketed by prediction. TFMA
    splits a fractional label l into (0, p, 1 - l) and (1, p, l), both in p's bucket: their sums are
    (l, p, 1), what is added here."""

    def add_input(self, accumulator, element):
        if self._direct and self._prediction_based_bucketing:
            pair = _direct_pair(element, self._key)
            if pair is not None:
                label, prediction = pair
                index = self._bucket_index(prediction)
                bucket = accumulator.get(index)
                if bucket is None:
                    accumulator[index] = calibration_histogram.Bucket(index, label, prediction, 1.0)
                else:
                    bucket.weighted_labels += label
                    bucket.weighted_predictions += prediction
                    bucket.weighted_examples += 1.0
                return accumulator
        return super().add_input(accumulator, element)


_FAST = {tfma_calibration._WeightedLabelsPredictionsExamplesCombiner: _FastSums,
         calibration_histogram._CalibrationHistogramCombiner: _FastHistogram}


def _fast_combiners(computations: metric_types.MetricComputations) -> metric_types.MetricComputations:
    out = []
    for c in computations:
        fast = _FAST.get(type(c.combiner)) if isinstance(c, metric_types.MetricComputation) else None
        if fast is not None:
            combiner = fast.__new__(fast)
            combiner.__dict__.update(c.combiner.__dict__)
            combiner._direct = _direct_read_applies(combiner._key, combiner._eval_config, combiner._aggregation_type,
                                                    combiner._class_weights, combiner._example_weighted)
            c = c._replace(combiner=combiner)
        out.append(c)
    return out


class FastCalibration(tfma_calibration.Calibration):
    def computations(self, *args, **kwargs):
        return _fast_combiners(super().computations(*args, **kwargs))


class FastMeanLabel(tfma_calibration.MeanLabel):
    def computations(self, *args, **kwargs):
        return _fast_combiners(super().computations(*args, **kwargs))


class FastMeanPrediction(tfma_calibration.MeanPrediction):
    def computations(self, *args, **kwargs):
        return _fast_combiners(super().computations(*args, **kwargs))


class FastCalibrationPlot(tfma_calibration_plot.CalibrationPlot):
    def computations(self, *args, **kwargs):
        return _fast_combiners(super().computations(*args, **kwargs))
