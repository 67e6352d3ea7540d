"""AtomicPusher's keys and ComponentSpec: TFX's Pusher contract (model + blessing in, PushedModel
out), plus `push_blessing`: a ModelBlessing that is blessed only for a model whose push was
verified, which the DAG's incumbent resolver reads (`pipeline/pipeline.py`)."""
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
PUSHED_MODEL_KEY = "pushed_model"
PUSH_BLESSING_KEY = "push_blessing"
SERVING_DIR_KEY = "serving_dir"

# PushedModel custom properties, as TFX's own Pusher writes them
PUSHED = "pushed"
PUSHED_DESTINATION = "pushed_destination"
PUSHED_VERSION = "pushed_version"
PUSHED_TIMESTAMP = "pushed_timestamp"


class AtomicPusherSpec(ComponentSpec):
    PARAMETERS = {SERVING_DIR_KEY: ExecutionParameter(type=str)}
    INPUTS = {MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
              MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing)}
    OUTPUTS = {PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel),
               PUSH_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing)}
