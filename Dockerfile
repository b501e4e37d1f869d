# The pipeline image: what KubeflowV2DagRunner components and Beam workers run.
# Mirrors `make venv`: Python 3.10, the same exact pins, Keras 2 (tf-keras), project via setup.py.
FROM python:3.10-slim

ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The compiled pipelines read the curated schemas from /drgrad/data/schemas
# (pipeline/configs.py IMAGE_SOURCE_ROOT), so the project lives at /drgrad.
WORKDIR /drgrad
COPY requirements.txt constraints.txt ./
RUN python -m pip install --no-cache-dir "pip<25" "setuptools<81" wheel \
 && python -m pip install --no-cache-dir -r requirements.txt -c constraints.txt

# Every folder setup.py maps into the `drgrad` namespace (drgrad.data, drgrad.model, ...).
COPY setup.py README.md ./
COPY data/ data/
COPY model/ model/
COPY training/ training/
COPY pipeline/ pipeline/
COPY bench/ bench/
COPY serving/ serving/
COPY cli/ cli/
RUN python -m pip install --no-cache-dir --no-deps --no-build-isolation --use-pep517 .

# TFX's container entrypoint is supplied by KubeflowV2DagRunner's component specs.
