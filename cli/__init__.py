"""`drgrad.cli`: the `drgrad` command, the application on top of every layer.

Each layer owns its sub-commands in its own module (`drgrad.data.cli`, `drgrad.training.cli`,
`drgrad.bench.cli`, `drgrad.serving.cli`, `drgrad.pipeline.commands`, ...) exposing
`register(subparsers)`; `drgrad.cli.main` only composes them. `python -m drgrad.cli ...` is the
same as the `drgrad` console script.
"""
import os as _os

_os.environ["TF_USE_LEGACY_KERAS"] = "1"
