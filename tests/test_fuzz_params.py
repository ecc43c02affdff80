"""Fuzzing the params loader: any bytes in params.yaml give params or one UserError, nothing else.

Hypothesis runs a short profile in `make test` and a long one under `make fuzz`
(HYPOTHESIS_PROFILE=fuzz; the profiles are in conftest.py). BENCHMARKS.md records the runs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from bertpipe.errors import MAX_MESSAGE_CHARS, UserError
from bertpipe.params import Params, load_params


def _section_keys(model: type[Params] | Any, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(f"{prefix}{name}")
        annotation = field.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            keys += _section_keys(annotation, f"{prefix}{name}.")
    return keys


# real keys (most mistakes are in values), with some noise
KEYS = st.sampled_from(sorted({key.split(".")[-1] for key in _section_keys(Params)})) | st.text(
    max_size=8
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)
SECTIONS = st.sampled_from(["data", "clean", "split", "train", "evaluate", "gate"])
DOCUMENTS = st.dictionaries(KEYS | SECTIONS, VALUES | st.dictionaries(KEYS, VALUES), max_size=8)


def _verdict(content: bytes) -> Params | UserError:
    """What load_params says of a params.yaml holding `content`: params, or the UserError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "params.yaml"
        path.write_bytes(content)
        try:
            return load_params(path)
        except UserError as error:
            return error


def _assert_one_line(verdict: Params | UserError) -> None:
    if isinstance(verdict, UserError):
        message = str(verdict)
        assert "\n" not in message and len(message) <= MAX_MESSAGE_CHARS, message


@given(st.binary(max_size=400))
@example(b"seed: 1\nseed: 2\n")
@example("model: caf\xe9\n".encode("latin-1"))
@example(b"\xef\xbb\xbfseed: 3\n")
@example(b"[" * 1000 + b"]" * 1000)  # nested past the recursion limit
@example(b"a: &a [*a]\n")
@example(b"? [1, 2]\n: 3\n")
@example(b"seed: 1\x00\n")
def test_any_bytes_give_params_or_one_user_error(content: bytes) -> None:
    _assert_one_line(_verdict(content))


@given(DOCUMENTS)
def test_any_yaml_document_gives_params_or_one_user_error(document: dict[str, Any]) -> None:
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    _assert_one_line(_verdict(text.encode("utf-8")))


@given(DOCUMENTS, st.data())
def test_a_cut_or_spliced_yaml_document_gives_params_or_one_user_error(
    document: dict[str, Any], data: st.DataObject
) -> None:
    # broken YAML: a valid document with a slice removed and random text spliced in
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    noise = data.draw(
        st.text(alphabet=st.sampled_from(list(":-[]{}&*!|>'\"#%@` \n\t,?")), max_size=6)
    )
    _assert_one_line(_verdict((text[:start] + noise + text[end:]).encode("utf-8")))
