import core.env  # noqa: F401  (the Keras switch, before TensorFlow loads)
