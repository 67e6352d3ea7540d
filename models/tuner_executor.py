"""The Tuner's executor: TFX's own, which also keeps the Tuner's reference model (`models/tuning.py`)
for the baseline Trainer of the same run (`models/trainer.py:run_fn`), so that the promotions
baseline is trained once per run, not once as the Tuner's reference and again as the baseline."""
import json
import os

import tensorflow as tf
from tfx.components.tuner.executor import Executor as TunerExecutor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from models.config import REFERENCE_DIR_KEY, REFERENCE_MODEL_KEY


class ReferenceTunerExecutor(TunerExecutor):
    """TFX's Tuner executor, which also keeps the Tuner's reference: `tuner_fn` trains the promotions
    baseline at its full budget and exports it into the `tuner_results` artifact (`reference/`), and
    the best hyperparameters name it (`REFERENCE_MODEL_KEY`), so that the baseline Trainer of the same
    run serves it instead of training the same model again (`models/trainer.py:run_fn`). The key sits beside
    KerasTuner's `values`, which alone the Trainer applies (`models.trainer.hyperparameter_values`)."""

    def Do(self, input_dict, output_dict, exec_properties):
        folder = os.path.join(artifact_utils.get_single_uri(output_dict["tuner_results"]), "reference")
        custom = json.loads(exec_properties.get("custom_config") or "{}")
        custom[REFERENCE_DIR_KEY] = folder
        super().Do(input_dict, output_dict, dict(exec_properties, custom_config=json.dumps(custom)))
        served = os.path.join(folder, "Format-Serving")
        if not tf.io.gfile.exists(served):  # no trial ran (no reference trained): nothing to name
            return
        # the one file TFX wrote there, found as TFX's Trainer finds it
        best = io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(output_dict["best_hyperparameters"]))
        with tf.io.gfile.GFile(best) as f:
            config = json.loads(f.read())
        config[REFERENCE_MODEL_KEY] = served
        with tf.io.gfile.GFile(best, "w") as f:
            f.write(json.dumps(config))
