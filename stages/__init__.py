"""The pipeline's stages, one module per dvc.yaml stage, each run as `python -m stages.<name>`.

Each also runs as a script (`python stages/train.py`). A script's folder goes first on the
import path, where stages/tokenize.py would shadow the standard library's tokenize (that inspect
imports), so each stage run by path first puts the project root there in its place, and then
imports this package.

This package puts the src/ beside it first on the import path, ahead of any installed bertpipe:
dvc.yaml hashes that src/ as the stages' code, and a queued experiment (`dvc exp run --queue`)
runs in a copy of the repository, whose stages must import the copy's src/, not the workspace's
that an editable install points at.
"""

import sys
from pathlib import Path

_SOURCE = Path(__file__).resolve().parents[1] / "src"
if (_SOURCE / "bertpipe").is_dir() and sys.path[:1] != [str(_SOURCE)]:
    sys.path.insert(0, str(_SOURCE))
