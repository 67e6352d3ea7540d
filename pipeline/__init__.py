"""The DAG (`pipeline.py`, `configs.py`, `run_root.py`), its runners and the readers of what a run did."""
import core.env  # noqa: F401  (the Keras switch, before TensorFlow loads)
