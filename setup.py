"""podcast-mtl: a TFX pipeline for one multi-task model over podcast ads and promotions."""
from setuptools import find_packages, setup

PACKAGES = ["core", "schemas", "datagen", "components", "models", "evaluation", "study", "pipeline", "cli"]

setup(
    name="podcast-mtl",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=[p for name in PACKAGES for p in (name, name + ".*")]),
    package_data={"schemas": ["*.pbtxt", "*.md"]},
    install_requires=[
        "tfx==1.16.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.*",
        "tensorflow-recommenders==0.7.*",
        "apache-beam[gcp]==2.60.0",
        "tensorflow-data-validation==1.16.1",
        "tensorflow-transform==1.16.0",
        "tensorflow-model-analysis==0.47.1",
        "pyarrow",
        "pandas",
        "scikit-learn",
        "matplotlib",
    ],
    # kfp: the Vertex / Kubeflow v2 compiler; its pins (constraints-kfp.txt) need an overlay venv
    # because kfp 2.5 requires urllib3<2 (see constraints-kfp.txt and `make setup-kfp`)
    # lightgbm: the GBDT peer of bench/gbdt_peer.py (pinned in constraints.txt)
    extras_require={"dev": ["pytest", "pytest-xdist", "import-linter", "ruff", "lightgbm"], "peers": ["lightgbm"],
                    "kfp": ["kfp==2.5.0", "kfp-pipeline-spec==0.2.2"]},
    entry_points={"console_scripts": ["podcast-mtl=cli:main"]},
)
