"""Text normalisation and PHI masking (bertpipe.text), and the row filtering of clean_chunk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import clean_frame

from bertpipe.clean import clean_chunks
from bertpipe.errors import UserError
from bertpipe.params import CleanParams, DataParams
from bertpipe.text import mask_phi, normalize_text


def frame_of(texts: list[Any], labels: list[Any], **extra: list[Any]) -> pd.DataFrame:
    return pd.DataFrame({"text": texts, "label": labels, **extra})


def clean(
    frame: pd.DataFrame,
    task: str = "multiclass",
    data: DataParams | None = None,
    min_chars: int = 1,
    mask: bool = False,
    extra_columns: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, dict[str, Any]]:
    result = clean_frame(
        frame,
        data or DataParams(),
        CleanParams(min_chars=min_chars, mask_phi=mask),
        task,
        source="notes.csv",
        extra_columns=extra_columns,
    )
    return result.frame, result.report


def clean_error(frame: pd.DataFrame, task: str = "multiclass", **options: Any) -> str:
    with pytest.raises(UserError) as caught:
        clean(frame, task, **options)
    return str(caught.value)


def assert_rows_add_up(report: dict[str, Any]) -> None:
    assert report["rows_in"] - sum(report["dropped"].values()) == report["rows_out"]


# --- normalize_text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\ufb01ve", "five"),  # the 'fi' ligature, NFKC
        ("\uff26\uff55\uff4c\uff4c width", "Full width"),
        ("10\u00a0mg", "10 mg"),  # non-breaking space
        ("a\x00b\x07c\x1fd\x7fe\x85f", "a b c d e f"),  # C0, DEL and C1 controls
        ("zero\u200bwidth\ufeffmark", "zero width mark"),
        ("  many \t\n\r  spaces \u2028 here  ", "many spaces here"),
        ("", ""),
        ("caf\u00e9 already NFC", "caf\u00e9 already NFC"),
        ("cafe\u0301", "caf\u00e9"),  # combining accent composed
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_normalize_text_is_idempotent() -> None:
    once = normalize_text(" \ufb01\u00a0x\t\ty\x00 ")
    assert normalize_text(once) == once == "fi x y"


# --- mask_phi ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("mail jane.doe+x@clinic-a.example.org now", "mail [EMAIL] now"),
        ("see https://portal.example.com/a?b=1 now", "see [URL] now"),
        ("see www.example.com/x now", "see [URL] now"),
        ("seen 2024-03-14.", "seen [DATE]."),
        ("seen 03/14/2024 and 3-4-24", "seen [DATE] and [DATE]"),
        ("seen 14.03.2024", "seen [DATE]"),
        ("seen 10 Feb 2025", "seen [DATE]"),
        ("seen 3rd March, 2024", "seen [DATE]"),
        ("seen Feb 10, 2025", "seen [DATE]"),
        ("seen Sept. 2nd 2024", "seen [DATE]"),
        ("call 555-622-8797 w/ questions", "call [PHONE] w/ questions"),
        ("call (555) 622-8797", "call [PHONE]"),
        ("call 555.622.8797", "call [PHONE]"),
        ("call +1 555 622 8797", "call [PHONE]"),
        ("MRN 46608868.", "[ID]."),
        ("MRN-00482913", "[ID]"),
        ("MRN: 1234567", "[ID]"),
        ("acct 123456", "acct [ID]"),
        # ZIP codes are masked since issue 13 (they were kept before)
        ("5-digit zip 02139, room 4021", "5-digit zip [ZIP], room 4021"),
    ],
)
def test_mask_phi_masks(raw: str, expected: str) -> None:
    assert mask_phi(raw) == expected


@pytest.mark.parametrize(
    "text",
    [
        "BP 120/80, HR 85, RR 17, T 36.5, SpO2 92% RA",
        "furosemide 40 mg daily x 10 days",
        "81 y/o female, age 45, 2 of 3 doses",
        "Na 135 K 4.1 Cr 1.2 WBC 12.3 Plt 250",
        "EF 35%, ECG w/ ST depression V4-V6, 10-12 cm",
        "weight 70.5 kg, 155 lb, glucose 110-120 mg/dL",
        "ratio 1:10000, room 4021",
        "x 10 mo, in 2023, 1/2 normal",
    ],
)
def test_mask_phi_keeps_ordinary_numbers(text: str) -> None:
    assert mask_phi(text) == text


def test_mask_phi_masks_a_real_sample_note() -> None:
    note = (
        "Telehealth visit 05/01/2023. 29 y/o F c/o chest pressure. Vitals: BP 117/94, HR 105. "
        "Start furosemide 40 mg daily. Call 555-622-8797 w/ questions. MRN 46608868."
    )
    assert mask_phi(note) == (
        "Telehealth visit [DATE]. 29 y/o F c/o chest pressure. Vitals: BP 117/94, HR 105. "
        "Start furosemide 40 mg daily. Call [PHONE] w/ questions. [ID]."
    )


@pytest.mark.parametrize("date", ["2024/03/14", "2024.03.14"])
def test_mask_phi_masks_year_first_dates_with_slashes_or_dots(date: str) -> None:
    assert mask_phi(f"seen {date}") == "seen [DATE]"


@pytest.mark.parametrize("text", ["Novolog 10, 12 units", "Octreotide 50 100 mcg"])
def test_mask_phi_keeps_drug_names_starting_like_a_month(text: str) -> None:
    assert mask_phi(text) == text


def test_clean_frame_masks_only_when_asked() -> None:
    frame = frame_of(["reach me at jane@x.org on 2024-01-02", "plain note"], ["a", "b"])
    masked, _ = clean(frame, mask=True)
    assert masked["text"].tolist() == ["reach me at [EMAIL] on [DATE]", "plain note"]
    unmasked, _ = clean(frame, mask=False)
    assert unmasked["text"].tolist() == ["reach me at jane@x.org on 2024-01-02", "plain note"]


# --- clean_frame: drops and the report -----------------------------------------------------------


def test_drop_counts_by_reason() -> None:
    frame = frame_of(
        texts=[
            "a good note",  # kept
            "",  # empty
            None,  # empty (NaN)
            " \t\u00a0 ",  # empty after normalising
            "x",  # too short for min_chars=2
            "no label here",  # missing label (None)
            "blank label",  # missing label ("  ")
            "same note",  # kept
            "same  note",  # exact duplicate once whitespace is normalised
            "noisy note",  # conflicting duplicate
            "noisy note",  # conflicting duplicate
            "other note",  # kept
        ],
        labels=["a", "a", "a", "a", "a", None, "  ", "b", "b", "a", "b", "b"],
        pid=list("ABCDEFGHIJKL"),
    )
    out, report = clean(frame, min_chars=2, data=DataParams(carry_columns=["pid"]))
    assert report == {
        "rows_in": 12,
        "rows_out": 3,
        "dropped": {
            "empty_text": 3,
            "too_short": 1,
            "missing_label": 2,
            "duplicate": 1,
            "conflicting_duplicate": 2,
        },
    }
    assert_rows_add_up(report)
    assert out.to_dict("list") == {
        "text": ["a good note", "same note", "other note"],
        "label": ["a", "b", "b"],
        "pid": ["A", "H", "L"],  # the first of the duplicates is the one kept
    }


def test_min_chars_boundary() -> None:
    frame = frame_of(["abc", "abcd", "ab", "xyz!"], ["a", "b", "a", "b"])
    out, report = clean(frame, min_chars=3)
    assert out["text"].tolist() == ["abc", "abcd", "xyz!"]
    assert report["dropped"]["too_short"] == 1


def test_texts_and_labels_are_normalised() -> None:
    out, _ = clean(frame_of(["  \ufb01ne\x00 note ", "b"], [" card\u00a0io ", "neuro"]))
    assert out["text"].tolist() == ["fine note", "b"]
    assert out["label"].tolist() == ["card io", "neuro"]


def test_duplicates_differing_only_in_case_are_kept() -> None:
    out, report = clean(frame_of(["Note", "note", "b"], ["a", "a", "b"]))
    assert out["text"].tolist() == ["Note", "note", "b"]
    assert report["dropped"]["duplicate"] == 0


def test_carried_columns_and_extra_columns_are_kept_in_order() -> None:
    frame = frame_of(
        ["n1", "n2"], ["a", "b"], note_id=["1", "2"], patient=["P1", "P2"], junk=[0, 0]
    )
    out, _ = clean(frame, data=DataParams(carry_columns=["note_id"]), extra_columns=("patient",))
    assert list(out.columns) == ["text", "label", "note_id", "patient"]
    assert out["note_id"].tolist() == ["1", "2"]
    assert out["patient"].tolist() == ["P1", "P2"]


def test_carried_column_from_a_non_default_index() -> None:
    frame = frame_of(["n1", "n2", "n3"], ["a", "b", "a"], pid=["x", "y", "z"])
    frame.index = [7, 3, 5]
    out, _ = clean(frame, data=DataParams(carry_columns=["pid"]))
    assert out[["text", "pid"]].to_numpy().tolist() == [["n1", "x"], ["n2", "y"], ["n3", "z"]]


def test_missing_column_lists_the_existing_columns() -> None:
    message = clean_error(pd.DataFrame({"body": ["x"], "category": ["a"]}))
    assert message.startswith("notes.csv: missing column(s) 'text', 'label'")
    assert "the file has: 'body', 'category'" in message
    assert "one column only" not in message


def test_missing_carry_column_is_named() -> None:
    frame = frame_of(["x", "y"], ["a", "b"])
    message = clean_error(frame, data=DataParams(carry_columns=["patient_id"]))
    assert "missing column(s) 'patient_id'" in message


def test_single_class_is_an_error() -> None:
    message = clean_error(frame_of(["x", "y", "z"], ["only", "only", "only"]))
    assert "only 'only'" in message
    assert "at least two classes" in message


def test_single_class_after_dropping_is_an_error() -> None:
    message = clean_error(frame_of(["x", "y", ""], ["a", "a", "b"]))
    assert "only 'a'" in message


def test_binary_with_three_classes_is_an_error() -> None:
    message = clean_error(frame_of(["x", "y", "z"], ["neg", "pos", "maybe"]), task="binary")
    assert "task is binary" in message
    assert "3 classes" in message
    assert "set task: multiclass" in message


def test_binary_with_two_classes_works() -> None:
    out, _ = clean(frame_of(["x", "y", "z"], ["0", "1", "1"]), task="binary")
    assert out["label"].tolist() == ["0", "1", "1"]


def test_regression_labels_become_floats() -> None:
    out, report = clean(frame_of(["x", "y", "z", "w"], ["1.5", " 2 ", "-3e-1", None]), "regression")
    assert out["label"].tolist() == [1.5, 2.0, -0.3]
    assert report["dropped"]["missing_label"] == 1


@pytest.mark.parametrize("bad", ["high", "nan", "inf", "1,5"])
def test_regression_non_numeric_label_names_the_row(bad: str) -> None:
    message = clean_error(frame_of(["x", "y", "z"], ["1", "2", bad]), task="regression")
    assert message.startswith("notes.csv: row 3:")
    assert repr(bad) in message
    assert "column 'label'" in message
    assert "not a number" in message


def test_multilabel_parses_separator_and_json_lists() -> None:
    frame = frame_of(
        ["a", "b", "c", "d", "e", "f"],
        ["x|y", '["z", "y"]', "[]", "", " | ", "y | x | y"],
    )
    out, report = clean(frame, task="multilabel")
    assert out["text"].tolist() == ["a", "b", "c", "f"]
    assert [list(labels) for labels in out["label"]] == [["x", "y"], ["y", "z"], [], ["x", "y"]]
    # "[]" means no label applies and is kept; an empty cell or only separators is missing
    assert report["dropped"]["missing_label"] == 2


def test_multilabel_custom_separator() -> None:
    out, _ = clean(
        frame_of(["a", "b"], ["x;y", "x|y"]), "multilabel", data=DataParams(label_separator=";")
    )
    assert [list(labels) for labels in out["label"]] == [["x", "y"], ["x|y"]]


def test_multilabel_duplicates_compare_label_sets() -> None:
    out, report = clean(frame_of(["a", "a", "b", "b"], ["x|y", "y|x", "x", "y"]), "multilabel")
    assert out["text"].tolist() == ["a"]
    assert report["dropped"]["duplicate"] == 1
    assert report["dropped"]["conflicting_duplicate"] == 2


def test_multilabel_all_empty_is_an_error() -> None:
    assert "no labels after cleaning" in clean_error(
        frame_of(["a", "b"], ["[]", "[]"]), "multilabel"
    )


def test_several_text_columns_become_lists() -> None:
    frame = pd.DataFrame(
        {
            "q": ["same q", "same q", "", "other"],
            "r": ["r1", "r1", None, "r3"],
            "label": ["x", "x", "y", "y"],
        }
    )
    out, report = clean(frame, data=DataParams(text_column=["q", "r"]))
    assert out["text"].tolist() == [["same q", "r1"], ["other", "r3"]]
    assert report["dropped"]["duplicate"] == 1
    assert report["dropped"]["empty_text"] == 1


# --- the bundled sample --------------------------------------------------------------------------


def test_bundled_sample_cleans_with_the_known_drops(sample_frame: pd.DataFrame) -> None:
    out, report = clean(sample_frame, data=DataParams(carry_columns=["note_id", "patient_id"]))
    assert report["rows_in"] == len(sample_frame) == 1600
    assert report["dropped"] == {
        "empty_text": 3,
        "too_short": 0,
        "missing_label": 0,
        "duplicate": 10,
        "conflicting_duplicate": 0,
    }
    assert report["rows_out"] == len(out) == 1587
    assert_rows_add_up(report)
    assert not out["text"].duplicated().any()
    assert (out["text"].str.len() > 0).all()
    assert set(out["label"]) == set(sample_frame["label"])
    assert list(out.columns) == ["text", "label", "note_id", "patient_id"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SSN 123-45-6789 noted", "SSN [ID] noted"),
        ("acct 12-3456789", "acct [ID]"),
        ("seen 10th of March 2024", "seen [DATE]"),
        ("Feb 2025 visit", "[DATE] visit"),
        ("since 12/2023", "since [DATE]"),
        ("jane@www.clinic.org", "[EMAIL]"),
    ],
)
def test_mask_phi_review_gaps(text: str, expected: str) -> None:
    assert mask_phi(text) == expected


@pytest.mark.parametrize("column", ["label", "row_id"])
def test_carried_column_cannot_shadow_written_columns(column: str) -> None:
    frame = pd.DataFrame({"note": ["a b", "c d"], "y": ["x", "z"], column: [1, 2]})
    data = DataParams(text_column="note", label_column="y", carry_columns=[column])
    with pytest.raises(UserError, match="carry_columns"):
        clean_frame(frame, data, CleanParams(), "multiclass")


@pytest.mark.parametrize("label", [["a", "b"], {"name": "cardiology"}])
def test_list_or_object_labels_are_refused_outside_multilabel(label: Any) -> None:
    message = clean_error(frame_of(["x", "y"], ["a", label]))
    assert message.startswith(f"notes.csv: row 2: label {str(label)!r} in column 'label' is a ")
    assert "a list only with task: multilabel" in message


def test_object_labels_are_refused_in_multilabel() -> None:
    message = clean_error(frame_of(["x", "y"], [["a"], {"name": "b"}]), task="multilabel")
    assert "row 2: label" in message


def clean_chunks_error(tmp_path: Path, frame: pd.DataFrame, data: DataParams) -> str:
    output = tmp_path / "clean" / "notes.parquet"
    with pytest.raises(UserError) as caught:
        clean_chunks([frame], output, data, CleanParams(), "multiclass", "notes.csv")
    assert not output.parent.exists()  # no partial output
    return str(caught.value)


def test_all_blank_texts_are_blamed_on_the_text_column(tmp_path: Path) -> None:
    message = clean_chunks_error(
        tmp_path, frame_of(["", "  ", None], ["a", "b", "a"]), DataParams()
    )
    assert "every text in column(s) 'text' is empty" in message
    assert "data.text_column" in message
    assert "label_column" not in message


def test_all_missing_labels_are_blamed_on_the_label_column(tmp_path: Path) -> None:
    message = clean_chunks_error(tmp_path, frame_of(["x", "y"], [None, ""]), DataParams())
    assert "every row's label in column 'label' is missing" in message


def test_carried_column_parquet_cannot_store_is_named(tmp_path: Path) -> None:
    frame = frame_of(["x", "y"], ["a", "b"], ward=[1, "W2"])
    message = clean_chunks_error(tmp_path, frame, DataParams(carry_columns=["ward"]))
    assert "carried column 'ward' holds values Parquet cannot store in one type" in message


def test_group_ids_must_be_filled_and_their_spellings_are_warned_about(tmp_path: Path) -> None:
    # split.group_column keeps a patient's rows in one split: a row without a group has no
    # split, and "P1" beside "P1 " or "p2" beside "P2" are two patients to the split
    texts = [f"note {i}" for i in range(8)]
    labels = ["a", "b"] * 4
    blank = frame_of(texts, labels, pid=["P1", "P1", "P2", " ", "P3", "P3", "P4", "P4"])
    message = clean_error(blank, extra_columns=("pid",))
    assert message.startswith("notes.csv: row 4: column 'pid' (split.group_column) is empty;")
    # a row dropped anyway (no text) needs no group
    dropped = frame_of(["", *texts[1:]], labels, pid=[None, *["P1"] * 7])
    assert clean(dropped, extra_columns=("pid",))[1]["rows_out"] == 7

    pids = ["P1", "P1 ", "P2", "p2", "P3", "P3", "P4", "P4"]
    report = clean_chunks(
        [frame_of(texts, labels, pid=pids)],
        tmp_path / "out.parquet",
        DataParams(),
        CleanParams(),
        "multiclass",
        "notes.csv",
        ("pid",),
    )
    (warning,) = report["warnings"]
    assert warning == (
        "notes.csv: column 'pid' (split.group_column): 2 group(s) spelled in several ways are "
        "separate groups, which may fall into different splits ('P1' and 'P1 '; 'P2' and "
        "'p2'); write each group one way if they are one"
    )
