"""DRGrad production recommender: TFX pipeline -> Keras (tf-keras) model -> TF Serving.

Dependencies are pinned in requirements.txt / constraints.txt (installed by `make venv`);
install_requires names only the direct ones, unpinned, so `pip install .` inside the
pinned environment (the Dockerfile, Beam workers) changes nothing.
"""
from setuptools import find_packages, setup

setup(
    name="drgrad-recommender",
    version="0.1.0",
    description="Multi-task ranking with DRGrad (AAAI 2025) on TFX, tf-keras and TF Serving",
    python_requires=">=3.9,<3.11",
    packages=find_packages(include=["model*", "serving*", "pipeline*", "data*"]),
    package_data={
        "data": ["census-income/*", "schemas/*/*.pbtxt"],
        "pipeline": ["golden/*", "schedules/*.sh", "schedules/templates/*",
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
    ],
    entry_points={"console_scripts": ["drgrad=pipeline.cli:main"]},
)
