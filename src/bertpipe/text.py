"""Text normalisation and PHI masking, the same at cleaning and at prediction.

A trained model sees new text exactly as it saw its training text: `clean` applies `clean_text`
to every text cell, and `predict` to every text it is given.

`mask_phi` is a set of patterns for identifiers that have a shape (phone numbers, emails, URLs,
IP addresses, dates, SSNs, record numbers, ZIP codes, street addresses, ages over 89). It does not
find names, and it is not de-identification: see "Masking PHI" in the README.
"""

from __future__ import annotations

import bisect
import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_WHITESPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFKC, control characters to spaces, runs of whitespace to one space, trimmed."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip()


# --- the building blocks of the patterns ---------------------------------------------------------

_MONTH_NAMES = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_MONTH = rf"(?:{_MONTH_NAMES})\b\.?"
# Without a year, "may 12" or "dec 10" (decreased) are often not dates: only a capitalised month
# name counts there.
_CAPITAL_MONTH = (
    r"(?-i:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\b\.?"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
_ORDINAL_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)"
_YEAR = r"(?:1[89]\d\d|2\d\d\d)"
# Units and words after a number that make it a clinical value, never an identifier.
_UNITS = (
    r"(?:(?:units?|iu|u/(?:kg|hr?|day)|mg|mcg|µg|ug|ng|pg|kg|lbs?|ml|dl|meq|mmol|mol|umol|"
    r"cells|copies|cfu|count|mm|cm|mmhg|bpm|sec|seconds|min|minutes|hours?|hrs?|days?|weeks?|"
    r"months?|years?\s+ago|puffs?|tabs?|tablets?|caps?|capsules?|doses?|drops?|sprays?|"
    r"patch(?:es)?|vials?)\b|%|/(?:ul|mm3|mcl|hpf)\b)"
)
# Names after which a number is a measurement (vitals, labs, scores, doses).
_MEASURES = (
    r"(?:bp|hr|rr|pulse|temp|t|spo2|o2\s+sat|wt|weight|height|ht|bmi|na|k|cl|co2|hco3|bun|cr|"
    r"creatinine|glucose|glu|mg|phos|wbc|hgb|hb|hct|plt|platelets?|inr|ptt|alt|ast|alp|"
    r"ldh|ck|bnp|troponin|trop|tsh|a1c|hba1c|ldl|hdl|ferritin|psa|afp|cea|esr|crp|lactate|"
    r"egfr|gfr|viral\s+load|vl|cd4|gleason|gcs|apgar|nihss|mmse|moca|phq-?9|gad-?7|ef|"
    r"ecog|karnofsky|dose|vitamin\s+[a-e]\d?|insulin|heparin|penicillin)"
)

_STATES = (
    r"AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|"
    r"NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR"
)
_STATE_NAMES = (
    r"Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|"
    r"Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|"
    r"Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New\s+Hampshire|"
    r"New\s+Jersey|New\s+Mexico|New\s+York|North\s+Carolina|North\s+Dakota|Ohio|Oklahoma|Oregon|"
    r"Pennsylvania|Rhode\s+Island|South\s+Carolina|South\s+Dakota|Tennessee|Texas|Utah|Vermont|"
    r"Virginia|Washington|West\s+Virginia|Wisconsin|Wyoming|Puerto\s+Rico"
)
_STREET_TYPES = (
    r"street|st|avenue|ave|av|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
    r"terrace|terr|ter|circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl|plaza|plz|alley|"
    r"crescent|cres|close|row|path|pike|turnpike|loop|run|walk|commons|heights|hts|point|"
    r"ridge|route|rte|expressway|expy|freeway|fwy"
)
_UNIT_DESIGNATORS = r"apt|apartment|suite|ste|unit|fl|floor|rm|room|bldg|building|#"

# Words that introduce an identifier: "MRN: 0048213", "acct # 99-120-33", "Member ID XQ88213".
_ID_KEYWORDS = (
    r"mrn|mr\s*#|med(?:ical)?\s+rec(?:ord)?(?:\s+(?:number|num|no|nr))?|"
    r"(?:health\s+)?rec(?:ord)?\s*(?:number|num|no|nr|id|#)|chart(?:\s+(?:number|num|no|id))?|"
    r"acct|account(?:\s+(?:number|num|no|nr|id))?|a/c|encounter(?:\s+(?:number|num|no|id))?|"
    r"enc|fin|csn|har|member(?:\s+(?:id|number|no))?|subscriber(?:\s+(?:id|number|no))?|"
    r"policy(?:\s+(?:id|number|no))?|group\s+(?:id|number|no)|beneficiary(?:\s+(?:id|number|no))?|"
    r"(?:health\s+)?plan\s+(?:id|number|no)|insurance\s+(?:id|number|no)|"
    r"(?:patient|pt|visit|case|order|claim|specimen|accession|lab|episode|admission|"
    r"device|serial|certificate|license|licence|badge|employee|study|subject|hospital|"
    r"billing|invoice|referral|authorization|auth)\s*(?:id|number|num|no|nr|#)|"
    r"accession|specimen|claim|dea|npi|license|licence|lic|serial|vin|plate|id|identifier|uid"
)
_NUMBER = r"\d(?:[\d,.]*\d)?"
_SEPARATOR = r"[\s:#.=-]{0,4}"
# after a number that could end a phone number or a two-digit year, but is an age: "... 69 y/o"
_NOT_AN_AGE = r"(?![\s-]*(?:years?\b|yrs?\b|yo\b|y/o|y\.o\.|year-old))"


@dataclass(frozen=True)
class PhiSpan:
    """One piece of text found to be PHI: text[start:end] is replaced by `placeholder`."""

    start: int
    end: int
    placeholder: str


@dataclass(frozen=True)
class _Rule:
    placeholder: str
    pattern: re.Pattern[str]
    # a check on the match, for what a pattern cannot say (a month is 1 to 12)
    accept: Callable[[re.Match[str]], bool] | None = None


def _valid_numeric_date(match: re.Match[str]) -> bool:
    first, second = int(match["first"]), int(match["second"])
    # month/day or day/month: both at most 31, one of them a month
    return 1 <= first <= 31 and 1 <= second <= 31 and min(first, second) <= 12


def _valid_compact_date(match: re.Match[str]) -> bool:
    digits = match["phi"]
    month, day = int(digits[4:6]), int(digits[6:8])
    return 1 <= month <= 12 and 1 <= day <= 31


def _compile(pattern: str, ignore_case: bool = True) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE if ignore_case else 0)


# Clinical values that no PHI pattern may touch: a number after a measure's name, or before a
# unit. They are found first and reserved, so that "vitamin D 1000000 units" keeps its dose.
_CLINICAL_VALUES: tuple[re.Pattern[str], ...] = (
    _compile(
        rf"\b{_MEASURES}\b(?:\s+(?:count|level|value|dose))?\s*(?:[:=]|of|is|was)?\s*{_NUMBER}(?:(?:\s*[/x]\s*|[+=]){_NUMBER})*"
    ),
    _compile(rf"(?<![\w.-]){_NUMBER}(?:\s*-\s*{_NUMBER})?\s*{_UNITS}(?!-)"),
)

# PHI patterns, tried in this order; a match that overlaps an earlier one or a clinical value is
# skipped. The broad ones (URLs, emails) come first so that their digits are not taken for phone
# numbers or identifiers. Where a pattern has a group "phi", only that group is masked: the
# keyword before it stays ("SSN [ID]").
_RULES: tuple[_Rule, ...] = (
    # the local part is at most 64 characters (RFC 5321); unbounded, a long run of word characters
    # and hyphens without an @ (like "12-12-12-...") took time quadratic in the run's length
    _Rule("[EMAIL]", _compile(r"\b[\w.+-]{1,64}@[\w-]+(?:\.[\w-]+)+\b")),
    # written out to dodge harvesters: "jane.doe [at] example [dot] org"
    _Rule(
        "[EMAIL]",
        _compile(r"\b[\w.+-]{1,64}\s*[\[(]at[\])]\s*[\w-]+(?:\s*[\[(]dot[\])]\s*\w+)+"),
    ),
    _Rule(
        "[URL]",
        _compile(r"\b(?:(?:https?|ftp|sftp)://|www\.)[^\s<>\"']*[^\s<>\"'.,;:!?)\]}]"),
    ),
    _Rule(
        "[URL]",
        _compile(
            r"(?<![\w@.-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
            r"(?:com|org|net|edu|gov|mil|int|info|biz|io|us|health|care|clinic|hospital|"
            r"co\.uk|uk|ca|au|de|fr|nl|eu|me|app|ai)\b"
            r"(?:[/?#][^\s<>\"']*[^\s<>\"'.,;:!?)\]}])?"
        ),
    ),
    _Rule(
        "[IP]",
        _compile(
            r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
            r"(?::\d{1,5})?(?![\w]|\.\d)"
        ),
    ),
    _Rule(
        "[IP]",
        _compile(
            r"(?<![\w:])(?:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}"
            r"|(?:[0-9a-f]{1,4}:){1,7}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?"
            r"|::(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4})(?![\w:])"
        ),
    ),
    # --- dates ---
    _Rule(
        "[DATE]",
        _compile(
            r"\b(?:1[89]|2\d)\d\d(?P<sep>[-/.])(?:0?[1-9]|1[0-2])(?P=sep)(?:0?[1-9]|[12]\d|3[01])"
            r"(?:[T ](?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?\b"
        ),
    ),
    _Rule(
        "[DATE]",
        _compile(
            r"(?<![\w.,/-])(?P<first>\d{1,2})(?P<sep>[/.-])(?P<second>\d{1,2})(?P=sep)"
            r"(?:\d{4}|\d{2})(?![\w/-]|[.,]\d)"
        ),
        _valid_numeric_date,
    ),
    _Rule(
        "[DATE]",
        _compile(
            rf"\b(?:(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?\.?,?\s+)?"
            rf"(?:the\s+)?{_DAY}(?:\s+of\s+|[\s/-]+|\.)"
            rf"(?:{_MONTH}[\s,./-]*{_YEAR}|(?:{_MONTH_NAMES})[\s/-]'?\d\d(?!,?\s*\d))"
            rf"{_NOT_AN_AGE}\b"
        ),
    ),
    _Rule(
        "[DATE]",
        _compile(
            rf"\b(?:(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?\.?,?\s+)?"
            rf"{_MONTH}[\s./-]*{_DAY}(?:,\s*|[\s/-]+)(?:{_YEAR}|'?\d\d){_NOT_AN_AGE}\b"
        ),
    ),
    _Rule("[DATE]", _compile(rf"\b{_MONTH}[\s,./-]*(?:1[89]|20)\d\d\b")),
    # written without separators, as some record systems print them: 05JAN2023, 5Jan23
    _Rule("[DATE]", _compile(rf"\b{_DAY}(?:{_MONTH_NAMES})(?:1[89]\d\d|2\d\d\d|\d\d)\b")),
    _Rule("[DATE]", _compile(rf"\b{_CAPITAL_MONTH}\s+{_DAY}\b(?!\s*{_UNITS})(?![.,:]\d)")),
    _Rule("[DATE]", _compile(rf"\b(?:{_ORDINAL_DAY}|{_DAY}\s+of)\s+{_CAPITAL_MONTH}")),
    _Rule("[DATE]", _compile(rf"\b(?:0?[1-9]|[12]\d|3[01])\s+{_CAPITAL_MONTH}\b")),
    _Rule("[DATE]", _compile(r"(?<![\w/.-])(?:0?[1-9]|1[0-2])[/-](?:19|20)\d\d\b(?![/-]\d)")),
    _Rule(
        "[DATE]",
        _compile(
            r"\b(?:on|since|from|until|till|to|through|dated?|dob|d\.o\.b\.|born|seen|admitted|"
            r"discharged|visit(?:ed)?|due|as\s+of|last|next|returns?|follow[- ]?up|f/u|appt|"
            r"appointment|(?:mon|tues|wednes|thurs|fri|satur|sun)day)\s*:?\s*"
            r"(?P<phi>(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01]))(?![/\d]|\.\d)"
        ),
    ),
    _Rule(
        "[DATE]",
        _compile(r"(?<![\w.-])(?P<phi>(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))\b"),
        _valid_compact_date,
    ),
    # --- social security numbers, before phone numbers, whose digits they would otherwise feed
    _Rule("[ID]", _compile(r"(?<![\w-])\d{3}(?P<sep>[- .])\d{2}(?P=sep)\d{4}(?![\w-]|\.\d)")),
    _Rule(
        "[ID]",
        _compile(
            r"\b(?:ssn|ss#|social\s+security(?:\s+(?:number|num|no|#))?)[\s:#.]*(?P<phi>\d{9})\b"
        ),
    ),
    # --- phone and fax numbers ---
    _Rule(
        "[PHONE]",
        _compile(
            r"(?<![\w+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]?\d{4}\b"
            r"(?:\s*(?:x|ext\.?|extension)\s*\d{1,6}\b)?"
        ),
    ),
    _Rule(
        "[PHONE]",
        _compile(rf"(?<![\w+])\+\d{{1,3}}(?:[\s.-]?\(?\d{{1,5}}\)?){{2,5}}\b{_NOT_AN_AGE}"),
    ),
    _Rule(
        "[PHONE]",
        _compile(
            r"\b(?:phone|tel|telephone|cell|mobile|fax|pager|beeper|call|contact|reach|text|"
            r"home|work|office|ext|extension|dial)\b\.?(?:\s*(?:no\.?|number|#))?[\s:#]*"
            r"(?P<phi>\+?\(?\d[\d\s().-]{5,18}\d)\b" + rf"(?!\s*{_UNITS}){_NOT_AN_AGE}"
        ),
    ),
    # --- record numbers ---
    # a number of six digits or more, with its capitalised prefix (MRN-00482913, ACCT 1234567),
    # or an account-like 12-3456789
    _Rule(
        "[ID]",
        _compile(
            r"\b(?:[A-Z]{1,5}[-#:]?\s?)?(?:\d{6,}|\d{2}-\d{7})\b(?![.,]\d)",
            ignore_case=False,
        ),
    ),
    _Rule(
        "[ID]",
        _compile(
            rf"\b(?:{_ID_KEYWORDS})(?:(?<=#)|\b){_SEPARATOR}"
            # the identifier: three digits or more, in groups joined by - / . or a space
            r"(?P<phi>(?=(?:[a-z -]*\d){3})[a-z0-9]"
            r"(?:[a-z0-9]|[-/.](?=[a-z0-9])|(?<=\d) (?=\d{3,4}(?![\w-]))){2,24})"
            rf"(?![\w-]){_NOT_AN_AGE}"
        ),
    ),
    # letters glued to five or more digits: A1234567, XQH88213004
    _Rule("[ID]", _compile(r"\b[A-Z]{1,4}-?\d{5,}[A-Z]?\b", ignore_case=False)),
    # --- places ---
    _Rule(
        "[ADDRESS]",
        _compile(
            r"\b(?:p\.?\s?o\.?\s*box|post\s+office\s+box|box)\s*#?\s*\d{1,6}\b",
        ),
    ),
    _Rule(
        "[ADDRESS]",
        _compile(
            r"\b\d{1,6}[A-Za-z]?(?:-\d{1,4})?\s+"
            r"(?:(?:[NSEW]|[NS][EW]|North|South|East|West)\.?\s+)?"
            # not "3 MO. PT" or "2 WKS HOME DR": a time or a dose is not a street name
            r"(?!(?i:mos?|months?|wks?|weeks?|days?|hrs?|hours?|yrs?|years?|tabs?|times)\b)"
            r"(?:(?:[A-Z][\w'-]*|[A-Z]\.|Jr\.|Sr\.|St\.|Mt\.|\d{1,4}(?:st|nd|rd|th))\s+){1,4}"
            rf"(?i:{_STREET_TYPES})\b\.?"
            r"(?:\s+(?:[NSEW]|[NS][EW]|North|South|East|West)\b\.?)?"
            rf"(?:,?\s*(?i:{_UNIT_DESIGNATORS})\.?\s*#?\s*[A-Za-z0-9]{{1,5}}\b)?",
            ignore_case=False,
        ),
    ),
    _Rule(
        "[ZIP]",
        _compile(
            r"\b(?:[A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,2},?\s+)?"
            rf"(?:{_STATES}|{_STATE_NAMES})\.?,?\s+\d{{5}}(?:-\d{{4}})?\b",
            ignore_case=False,
        ),
    ),
    _Rule(
        "[ZIP]",
        _compile(
            r"\b(?:zip|zip\s*code|zipcode|postal\s+code|postcode)\b[\s:#]*(?P<phi>\d{5}(?:-\d{4})?)\b"
        ),
    ),
    _Rule("[ZIP]", _compile(r"(?<![\w-])\d{5}-\d{4}(?![\w-])")),
    # --- ages over 89 (HIPAA names them; younger ages may stay) ---
    _Rule(
        "[AGE]",
        _compile(
            r"\b(?P<phi>9\d|1[0-2]\d)(?:\s*|-)(?:years?|yrs?|yo|y/o|y\.o\.?|yr|y)\b"
            r"(?:[\s-]*old)?"
        ),
    ),
    _Rule(
        "[AGE]",
        _compile(r"\b(?:aged?|age\s+of|at\s+age)\b[\s:]*(?P<phi>9\d|1[0-2]\d)\b(?!\s*(?:%|mg|kg))"),
    ),
    _Rule(
        "[AGE]",
        _compile(
            r"\b(?:in\s+(?:his|her|their|the)\s+(?:early\s+|mid\s+|late\s+)?)(?P<phi>90s|100s|nineties)\b"
        ),
    ),
    _Rule(
        "[AGE]",
        _compile(
            r"\b(?P<phi>(?:ninety|one\s+hundred(?:\s+and)?)(?:[\s-](?:one|two|three|four|five|six|"
            r"seven|eight|nine|ten))?)[\s-]+(?:years?|yrs?)(?:[\s-]+old)?\b"
        ),
    ),
    _Rule("[AGE]", _compile(r"\b(?P<phi>nonagenarian|centenarian)\b")),
)


class _Claimed:
    """Non-overlapping spans, sorted, so that an overlap check costs a binary search (a note
    with tens of thousands of phone numbers stays linear, not quadratic)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        index = bisect.bisect_right(self.starts, start)
        return (index > 0 and self.ends[index - 1] > start) or (
            index < len(self.starts) and self.starts[index] < end
        )

    def free_run(self, position: int) -> tuple[int, int]:
        """The unclaimed stretch at or after `position`: (first free index, next claimed start)."""
        index = bisect.bisect_right(self.starts, position)
        if index > 0 and self.ends[index - 1] > position:
            position = self.ends[index - 1]  # inside a claimed span: start after it
        return position, self.starts[index] if index < len(self.starts) else sys.maxsize

    def add(self, start: int, end: int) -> None:
        index = bisect.bisect_right(self.starts, start)
        self.starts.insert(index, start)
        self.ends.insert(index, end)


def _clinical_values(text: str) -> _Claimed:
    spans = sorted(match.span() for pattern in _CLINICAL_VALUES for match in pattern.finditer(text))
    merged = _Claimed()
    for start, end in spans:
        if merged.ends and start < merged.ends[-1]:
            merged.ends[-1] = max(merged.ends[-1], end)
        else:
            merged.add(start, end)
    return merged


def _clashes(match: re.Match[str], group: int | str, *claims: _Claimed) -> bool:
    start, end = match.span(group)
    return any(claimed.overlaps(start, end) for claimed in claims)


def find_phi(text: str) -> list[PhiSpan]:
    """The PHI that `mask_phi` replaces, in text order, as non-overlapping spans."""
    reserved = _clinical_values(text)
    taken = _Claimed()
    found: list[PhiSpan] = []
    for rule in _RULES:
        group = "phi" if "phi" in rule.pattern.groupindex else 0
        for first_match in rule.pattern.finditer(text):
            match: re.Match[str] | None = first_match
            if _clashes(first_match, group, taken, reserved):
                # it ran into something found before ("+44 20 8871 0455 2012/11/09"): look
                # again in the free text where it starts, up to the next claimed span
                start, _ = taken.free_run(first_match.start())
                start, _ = reserved.free_run(start)
                limit = min(taken.free_run(start)[1], reserved.free_run(start)[1], len(text))
                match = rule.pattern.search(text, start, limit) if start < limit else None
                if match is None or match.start() > first_match.end():
                    continue
            if _clashes(match, group, taken, reserved):
                continue
            if rule.accept is not None and not rule.accept(match):
                continue
            start, end = match.span(group)
            taken.add(start, end)
            found.append(PhiSpan(start, end, rule.placeholder))
    return sorted(found, key=lambda span: span.start)


def mask_phi(text: str) -> str:
    """Replace the PHI that `find_phi` finds with placeholders like [PHONE] and [DATE]."""
    pieces: list[str] = []
    position = 0
    for span in find_phi(text):
        pieces += [text[position : span.start], span.placeholder]
        position = span.end
    pieces.append(text[position:])
    return "".join(pieces)


def clean_text(text: str, mask: bool) -> str:
    """`normalize_text`, then `mask_phi` when `mask` (clean.mask_phi in params.yaml)."""
    text = normalize_text(text)
    return mask_phi(text) if mask else text
