import os as _os

# TFX 1.16, TFMA and TFRS use Keras 2: this must be set before TensorFlow is imported.
_os.environ["TF_USE_LEGACY_KERAS"] = "1"

import warnings as _warnings

# google-api-core warns on every import under Python 3.10, which the pinned TFX stack needs.
_warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")
