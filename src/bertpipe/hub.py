"""`bertpipe download-model`: fetch a hub model once into a folder that DVC then tracks.

The folder gets `bertpipe-source.json`: the hub id, the requested and resolved revision, and the
sha256 of every file, so a later reader can tell exactly which weights a run started from.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bertpipe.errors import UserError
from bertpipe.files import atomic_path, sha256_file
from bertpipe.model import SOURCE_FILE, check_family, family_of, refuse_remote_code

# fetch(hub_id, revision, folder) downloads the model's files into folder; returns the commit id.
Fetch = Callable[[str, str | None, Path], str]

# Weights for other frameworks and exports: never read by bertpipe.
FOREIGN_FILES = ["*.h5", "*.msgpack", "*.ot", "*.onnx", "*.tflite"]
FOREIGN_FILES += ["onnx/*", "openvino/*", "coreml/*"]


def fetch_from_hub(hub_id: str, revision: str | None, folder: Path) -> str:
    """snapshot_download of the files bertpipe reads, pinned to the commit the revision names."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HTTPError

    try:
        info = HfApi().model_info(hub_id, revision=revision)
        names = {sibling.rfilename for sibling in info.siblings or []}
        ignore = list(FOREIGN_FILES)
        if any(name.endswith(".safetensors") for name in names):
            ignore.append("*.bin")  # the same weights twice; safetensors is the safe one
        snapshot_download(hub_id, revision=info.sha, local_dir=folder, ignore_patterns=ignore)
    except (OSError, ValueError, HTTPError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(
            f"download-model: cannot fetch '{hub_id}' from the Hugging Face hub ({reason}); "
            "check the id and the network (HF_HUB_OFFLINE must be unset), or copy the model "
            "folder here by other means"
        ) from None
    return str(info.sha)


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under folder, by its path relative to folder."""
    return {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def download_model(
    hub_id: str, target: str | Path, revision: str | None, fetch: Fetch = fetch_from_hub
) -> dict[str, Any]:
    """Fetch into a temporary folder, record the source, then rename onto `target`."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"--to: {target} already exists and is not empty; choose a new folder")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        resolved = fetch(hub_id, revision, tmp)
        shutil.rmtree(tmp / ".cache", ignore_errors=True)  # huggingface_hub's download metadata
        config = tmp / "config.json"
        if not config.is_file():
            raise UserError(f"download-model: '{hub_id}' has no config.json; is it a model?")
        from transformers import AutoConfig

        refuse_remote_code(tmp, hub_id)
        config = AutoConfig.from_pretrained(tmp, trust_remote_code=False)
        check_family(config, hub_id)
        source = {
            "hub_id": hub_id,
            "origin": "huggingface-hub",
            "family": family_of(config.model_type).name,
            "model_type": config.model_type,
            "revision": revision,
            "resolved_revision": resolved,
            "files": file_hashes(tmp),
        }
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    return source
