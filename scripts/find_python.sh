#!/usr/bin/env bash
# Prints the path of a Python 3.10 interpreter, found by name: $PYTHON if set, then
# `python3.10` on PATH, then pyenv's 3.10.x. TFX 1.16 supports Python 3.9-3.10 only.
set -u
is_310() { [ "$("$1" -c 'import sys; print("py%d.%d" % sys.version_info[:2])' 2>/dev/null)" = py3.10 ]; }
if [ -n "${PYTHON:-}" ]; then
  if is_310 "$PYTHON"; then command -v "$PYTHON"; exit 0; fi
  echo "error: PYTHON=$PYTHON is not a Python 3.10 interpreter (TFX 1.16 needs 3.9-3.10)." >&2
  exit 1
fi
if command -v python3.10 >/dev/null 2>&1 && is_310 python3.10; then command -v python3.10; exit 0; fi
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.[0-9]+)?$' | sort -t. -k3 -n -r); do
    candidate="$root/versions/$v/bin/python3.10"
    if is_310 "$candidate"; then echo "$candidate"; exit 0; fi
  done
fi
echo "error: no Python 3.10 interpreter found. Install one (e.g. 'pyenv install 3.10.13') or run 'make PYTHON=/path/to/python3.10 ...'. TFX 1.16 supports Python 3.9-3.10 only." >&2
exit 1
