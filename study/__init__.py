"""The ablation and cold-start study: trains model variants on one Transform output and reports
per-source AP. Sits above `evaluation/` and `models/`; the pipeline layer hands it its data."""
import core.env  # noqa: F401  (the Keras switch, before TensorFlow loads)
