"""The `drgrad` command line.

Each area owns its sub-commands in its own `cli.py` (`data/cli.py`, `training/cli.py`,
`serving/cli.py`, `pipeline/commands.py`, ...), exposing `register(subparsers)`. Those modules import
nothing heavy at import time, so `drgrad --help` is instant and `drgrad serve` never loads
model code. Handlers raise ordinary exceptions for bad input; `main` turns them into one
clear line on stderr and a non-zero exit, never a traceback (use `--debug` to see one).
"""
import argparse
import importlib
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"

# Modules that register sub-commands, in help order.
_COMMAND_MODULES = (
    "drgrad.data.cli",
    "drgrad.training.cli",
    "drgrad.bench.cli",
    "drgrad.serving.cli",
    "drgrad.pipeline.commands",
    "drgrad.pipeline.schema_freeze",
    "drgrad.pipeline.export_command",
    "drgrad.pipeline.schedule_commands",
    "drgrad.pipeline.demo",
)

# Exceptions that mean "the user gave bad input": reported in one line, exit code 1.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, FileExistsError, KeyError,
               PermissionError)


def _one_line(error):
    """The user-facing message of a bad-input error, on one line."""
    if isinstance(error, KeyError) and error.args:
        return error.args[0]
    if hasattr(error, "errors") and type(error).__name__ == "ValidationError":
        # pydantic: one "field: problem" per invalid field (its str() spans several lines).
        return "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'config'}: "
            f"{item['msg'].removeprefix('Value error, ')}"
            for item in error.errors())
    return error


def build_parser():
    parser = argparse.ArgumentParser(
        prog="drgrad",
        description="DRGrad multi-task recommender: data, training, TFX pipeline, serving.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("drgrad: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as error:
        if args.debug:
            raise
        message = _one_line(error)
        print(f"drgrad {args.command}: error: {message}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
