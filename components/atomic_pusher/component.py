"""Pusher: TFX's Pusher contract (model + blessing in, PushedModel out with `pushed`,
`pushed_destination`, `pushed_version`), with unique versions and atomic, verified pushes
(`executor.push_model`). Named `Pusher` so run summaries and progress lines read as before."""
import time

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Model, ModelBlessing, PushedModel
from tfx.utils import path_utils

from components.atomic_pusher.executor import push_model


@component
def Pusher(model: InputArtifact[Model], model_blessing: InputArtifact[ModelBlessing],
           pushed_model: OutputArtifact[PushedModel], serving_dir: Parameter[str]) -> None:
    """Pushes a blessed model to `<serving_dir>/<version>/`; records pushed=0 for an unblessed one."""
    if model_blessing.get_int_custom_property("blessed") != 1:
        pushed_model.set_int_custom_property("pushed", 0)
        return
    model_dir = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
    version, dest = push_model(model_dir, serving_dir)
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_string_custom_property("pushed_destination", dest)
    pushed_model.set_string_custom_property("pushed_version", str(version))
    pushed_model.set_int_custom_property("pushed_timestamp", int(time.time()))
