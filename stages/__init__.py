"""The pipeline's stages, one module per dvc.yaml stage, each run as `python -m stages.<name>`.

Each also runs as a script (`python stages/train.py`). A script's folder goes first on the
import path, where stages/tokenize.py would shadow the standard library's tokenize (that inspect
imports), so each stage run by path first puts the project root there in its place.
"""
