"""Pusher: the component (spec in `spec.py`, work in `executor.py`). Named `Pusher` so run
summaries and progress lines read as with TFX's own Pusher."""
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from components.atomic_pusher import executor, spec


class Pusher(base_component.BaseComponent):
    """Pushes a blessed model to `<serving_dir>/<version>/` on any `tf.io.gfile` filesystem;
    records pushed=0 (and an unblessed `push_blessing`) for a model the Evaluator did not bless."""

    SPEC_CLASS = spec.AtomicPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel, serving_dir: str):
        super().__init__(spec=spec.AtomicPusherSpec(
            model=model, model_blessing=model_blessing, serving_dir=serving_dir,
            pushed_model=types.Channel(type=standard_artifacts.PushedModel),
            push_blessing=types.Channel(type=standard_artifacts.ModelBlessing)))
