# The project image: every step of the compiled Vertex AI / Kubeflow v2 pipeline runs in it
# (`podcast-mtl compile --image IMAGE`). TFX's own image of the same version, plus this project's
# modules, tensorflow-recommenders and the rest of constraints.txt, plus the curated schema at
# /pipeline/schemas/impressions.pbtxt (pipeline/kubeflow_v2_runner.py: IMAGE_SCHEMA_FILE).
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/podcast-mtl:TAG .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/podcast-mtl:TAG
FROM gcr.io/tfx-oss-public/tfx:1.16.0

# TFX 1.16, TFMA and TFRS use Keras 2; must hold before any executor imports TensorFlow.
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONHASHSEED=0 \
    PYTHONPATH=/pipeline

WORKDIR /pipeline
COPY constraints.txt setup.py ./
COPY core core
COPY schemas schemas
COPY datagen datagen
COPY components components
COPY models models
COPY evaluation evaluation
COPY study study
COPY pipeline pipeline
COPY cli cli
RUN python -m pip install --no-cache-dir -c constraints.txt . \
 && python -c "import tfx, tensorflow_recommenders, components.temporal_example_gen.executor, models.trainer; print('tfx', tfx.__version__)"

# Dataflow workers get the project from this folder (--setup_file=/pipeline/setup.py, added by
# `podcast-mtl compile` when the Beam args name --runner=DataflowRunner).
# The compiled spec sets each step's command (TFX's kubeflow_v2_run_executor and, for the
# ExampleGen, TFX's file-based driver), so the base image's entry point is not used by it.
