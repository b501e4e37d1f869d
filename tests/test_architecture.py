"""The layering of docs/ARCHITECTURE.md holds, and is enforced on the installed `drgrad` names.

`make test` runs the import-linter contracts (.importlinter) before pytest; these tests prove
the contracts see the folders setup.py maps (a wrong-way import placed in model/ breaks them)
and that every module exists once, under `drgrad.*` only.
"""
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), "lint-imports")
LAYERS = ("data", "model", "training", "pipeline", "bench", "serving", "cli")


def _lint_imports():
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_the_layering_contracts_hold():
    result = _lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("folder, wrong_import, contract", [
    ("model", "import drgrad.pipeline.configs", "Layers"),
    ("data", "from drgrad.training import metrics", "Layers"),
    ("serving/server", "import drgrad.model.config", "serving runtime"),
])
def test_a_wrong_way_import_breaks_the_contracts(folder, wrong_import, contract):
    probe = os.path.join(ROOT, folder, f"_layering_probe_{os.getpid()}.py")
    with open(probe, "w") as handle:
        handle.write(f'"""Deliberately wrong import (tests/test_architecture.py)."""\n'
                     f"{wrong_import}  # noqa: F401\n")
    try:
        result = _lint_imports()
    finally:
        os.remove(probe)
    assert result.returncode != 0, result.stdout
    probe_module = f"drgrad.{folder.replace('/', '.')}._layering_probe_{os.getpid()}"
    assert probe_module in result.stdout
    assert contract in result.stdout and "BROKEN" in result.stdout


def test_every_module_exists_once_under_the_drgrad_namespace():
    # A fresh interpreter outside the repository imports every drgrad module; none of the
    # folders may also be importable (or imported) under its bare top-level name.
    script = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        import drgrad
        names = []
        for layer in {LAYERS!r}:
            package = importlib.import_module("drgrad." + layer)
            names.append(package.__name__)
            for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
                if info.name.endswith("__main__"):
                    continue
                importlib.import_module(info.name)
                names.append(info.name)
        bare = sorted(m for m in sys.modules if m.split(".")[0] in {LAYERS!r})
        assert not bare, bare
        for layer in {LAYERS!r}:
            try:
                importlib.import_module(layer)
            except ModuleNotFoundError:
                continue
            raise AssertionError("top-level " + layer + " is importable")
        print(len(names))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd="/", capture_output=True,
                            text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 90   # every module of the tree was imported
