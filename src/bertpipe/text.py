"""Text normalisation and PHI masking, the same at cleaning and at prediction.

A trained model sees new text exactly as it saw its training text: `clean` applies `clean_text`
to every text cell, and `predict` to every text it is given.
"""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_WHITESPACE = re.compile(r"\s+")

# PHI patterns, applied in this order: the broad ones (URLs, emails) first so that their digits
# are not taken for phone numbers or identifiers.
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?"
)
PHI_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # the local part is at most 64 characters (RFC 5321); unbounded, a long run of word characters
    # and hyphens without an @ (like "12-12-12-...") took time quadratic in the run's length
    ("[EMAIL]", re.compile(r"\b[\w.+-]{1,64}@[\w-]+(?:\.[\w-]+)+\b")),
    ("[URL]", re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)),
    (
        "[DATE]",
        re.compile(
            r"\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"
            r"|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}"
            rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{2,4}}"
            rf"|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
            rf"|{_MONTH}\s+\d{{4}}"
            r"|\d{1,2}/\d{4})\b",
            re.IGNORECASE,
        ),
    ),
    # social security numbers before phone numbers, whose digits they would otherwise feed
    ("[ID]", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    (
        "[PHONE]",
        re.compile(
            r"(?<![\w])(?:\+?\d{1,2}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}\b"
        ),
    ),
    # record numbers: six or more digits in a row (MRN-00482913), or account-like 12-3456789
    ("[ID]", re.compile(r"\b(?:[A-Z]{2,5}[-#:]?\s?)?(?:\d{6,}|\d{2}-\d{7})\b")),
)


def normalize_text(text: str) -> str:
    """NFKC, control characters to spaces, runs of whitespace to one space, trimmed."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip()


def mask_phi(text: str) -> str:
    """Replace emails, URLs, dates, phone numbers and record-like numbers with placeholders."""
    for placeholder, pattern in PHI_PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


def clean_text(text: str, mask: bool) -> str:
    """`normalize_text`, then `mask_phi` when `mask` (clean.mask_phi in params.yaml)."""
    text = normalize_text(text)
    return mask_phi(text) if mask else text
