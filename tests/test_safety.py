"""Safe loading: safetensors only, no remote code, weights-only torch.load, safe YAML."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
import torch

from bertpipe.errors import UserError
from bertpipe.model import load_trained

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(REPO / "src" / "bertpipe").glob("*.py"), *(REPO / "stages").glob("*.py")])


def calls(name: str) -> list[tuple[Path, ast.Call]]:
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == name:
                    found.append((path, node))
    return found


def keyword(call: ast.Call, name: str) -> object:
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def test_torch_load_is_weights_only() -> None:
    found = calls("load")
    torch_loads = [(p, c) for p, c in found if ast.unparse(c.func) == "torch.load"]
    assert torch_loads, "the checkpoint loader should be found"
    for path, call in torch_loads:
        assert keyword(call, "weights_only") is True, f"{path}: {ast.unparse(call)}"


def test_from_pretrained_never_trusts_remote_code() -> None:
    loads = calls("from_pretrained")
    assert len(loads) >= 4
    for path, call in loads:
        assert keyword(call, "trust_remote_code") is False, f"{path}: {ast.unparse(call)}"
        if "Model" in ast.unparse(call.func):
            assert keyword(call, "use_safetensors") is True, f"{path}: {ast.unparse(call)}"


def test_no_unsafe_deserialisers() -> None:
    for path in SOURCES:
        text = path.read_text()
        assert "pickle" not in text, path
        assert "unsafe_load" not in text and "yaml.Loader" not in text, path
        assert "FullLoader" not in text, path


def test_a_model_without_safetensors_is_refused(tiny_bert: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_bert, folder)
    from safetensors.torch import load_file

    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")  # the pickle-based format
    with pytest.raises(UserError, match="cannot load the model"):
        load_trained(folder)
