"""The bottom layer: the field table, the task table, the log format and layout, the temporal
split and exact AP. Nothing here imports the model, the components or the pipeline."""
from core import env  # noqa: F401,E402  (the Keras switch, before TensorFlow loads)
