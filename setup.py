"""DRGrad production recommender: TFX pipeline -> Keras (tf-keras) model -> TF Serving.

The folders of this repository are installed under ONE import namespace, `drgrad`:

    data/      -> drgrad.data        dataset files, loaders, simulator
    model/     -> drgrad.model       layers, backbones, strategies, MultiTaskModel, saving
    training/  -> drgrad.training    standalone fit, callbacks, metrics, `drgrad train`
    pipeline/  -> drgrad.pipeline    the TFX DAG, runners, schedules
    bench/     -> drgrad.bench       benchmark harness and scripts
    serving/   -> drgrad.serving     export (the one bridge) and the SavedModel-only runtime
    cli/       -> drgrad.cli         the `drgrad` command (composes every layer's sub-commands)

so nothing called `data`, `model`, `pipeline` or `serving` lands in a user's site-packages.
`drgrad` itself is an implicit namespace package (no __init__.py): import-linter then analyses
each portion from the folder it maps to (.importlinter). An editable install (`make venv`) uses
setuptools' PEP 660 finder for the same mapping.

Dependencies are pinned in requirements.txt / constraints.txt (installed by `make venv`);
install_requires names only the direct ones, unpinned, so `pip install .` inside the
pinned environment (the Dockerfile, Beam workers) changes nothing.
"""
from setuptools import find_packages, setup

# Top-level folder -> sub-package of the `drgrad` namespace (docs/ARCHITECTURE.md).
LAYERS = ("data", "model", "training", "pipeline", "bench", "serving", "cli")

packages, package_dir = [], {}
for folder in LAYERS:
    package_dir[f"drgrad.{folder}"] = folder
    packages.append(f"drgrad.{folder}")
    packages += [f"drgrad.{folder}.{sub}" for sub in find_packages(folder)]

setup(
    name="drgrad-recommender",
    version="0.2.0",
    description="Multi-task ranking with DRGrad (AAAI 2025) on TFX, tf-keras and TF Serving",
    python_requires=">=3.9,<3.11",
    packages=packages,
    package_dir=package_dir,
    package_data={
        "drgrad.data": ["*.yaml", "census-income/*", "schemas/*/*.pbtxt"],
        "drgrad.pipeline": ["golden/*", "schedules/*.sh", "schedules/templates/*",
                            "schedules/golden/*"],
    },
    include_package_data=True,
    install_requires=[
        "tfx",
        "tensorflow",
        "tf-keras",
        "tensorflow-transform",
        "tensorflow-recommenders",
        "tensorflow-serving-api",
        "aiohttp",
        "grpcio",
        "pandas",
        "pyarrow",
        "pydantic",
        "PyYAML",
        "tensorflow-data-validation",
        "croniter",
    ],
    entry_points={"console_scripts": ["drgrad=drgrad.cli.main:main"]},
)
