"""The pipeline's stages, one module per dvc.yaml stage, each run as `python -m stages.<name>`.

Run as modules, not as scripts: a script's folder goes first on the import path, where
stages/tokenize.py would shadow the standard library's tokenize (that inspect imports).
"""
