"""Exact (step-wise) Average Precision as a TFMA metric, usable in slices and thresholds.

TFMA's own `AUCPrecisionRecall` is an interpolated PR-AUC over buckets; this metric keeps every
(label, prediction, weight) of the slice and computes `core.ap.average_precision`, which
equals sklearn's `average_precision_score`.
"""
from __future__ import annotations

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


class _ExactAPCombiner(beam.CombineFn):
    def __init__(self, key, eval_config, aggregation_type, class_weights, example_weighted):
        self._key = key
        self._eval_config = eval_config
        self._aggregation_type = aggregation_type
        self._class_weights = class_weights
        self._example_weighted = example_weighted

    def create_accumulator(self):
        return ([], [], [])

    def add_input(self, acc, element):
        labels, preds, weights = acc
        for label, prediction, weight in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._key.model_name,
                output_name=self._key.output_name, aggregation_type=self._aggregation_type,
                class_weights=self._class_weights, example_weighted=self._example_weighted):
            labels.append(float(np.asarray(label).ravel()[0]))
            preds.append(float(np.asarray(prediction).ravel()[0]))
            weights.append(float(np.asarray(weight).ravel()[0]))
        return acc

    def merge_accumulators(self, accumulators: Iterable):
        out = ([], [], [])
        for acc in accumulators:
            for mine, theirs in zip(out, acc):
                mine.extend(theirs)
        return out

    def extract_output(self, acc) -> Dict[metric_types.MetricKey, float]:
        labels, preds, weights = acc
        if not labels:
            return {self._key: float("nan")}
        return {self._key: average_precision(labels, preds, weights)}
