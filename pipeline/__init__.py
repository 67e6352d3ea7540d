import os as _os

# TFX 1.16, TFMA and TFRS use Keras 2: this must be set before TensorFlow is imported.
_os.environ["TF_USE_LEGACY_KERAS"] = "1"
