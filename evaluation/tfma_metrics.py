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

from array import array
from collections.abc import Mapping
from typing import Dict, Iterable, Optional

import apache_beam as beam
import numpy as np
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


class _ExactAPCombiner(beam.CombineFn):
    def __init__(self, key, eval_config, aggregation_type, class_weights, example_weighted):
        self._key = key
        self._eval_config = eval_config
        self._aggregation_type = aggregation_type
        self._class_weights = class_weights
        self._example_weighted = example_weighted
        specs = eval_config.model_specs if eval_config else ()
        # The direct read applies when TFMA's lookup would be a plain dict access.
        self._direct = (key.sub_key is None and aggregation_type is None and not class_weights
                        and not example_weighted and not any(s.prediction_key or s.label_key for s in specs))

    def create_accumulator(self):
        return (array("d"), array("d"), array("d"))  # labels, predictions, weights (empty: all 1)

    def add_input(self, acc, element):
        labels, preds, weights = acc
        if self._direct and not weights:
            label = _single(_lookup(element.label, self._key.model_name, self._key.output_name))
            pred = _single(_lookup(element.prediction, self._key.model_name, self._key.output_name))
            if label is not None and pred is not None:
                labels.append(label)
                preds.append(pred)
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

