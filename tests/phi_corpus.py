"""A generated corpus of clinical notes with PHI, for testing and measuring `mask_phi`.

Every value is made up here from a seeded random generator: no real person, place or record.
Each note knows where its PHI is (what must be masked) and where its clinical values are (what
must stay). Several templates and layouts per type, so that a pattern that fits one layout is not
rewarded as if it fitted the type.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass

SEED = 20240304

# PHI types, and the recall `mask_phi` must reach on each (tests/test_phi.py asserts them).
# Names have no target: mask_phi does not mask names (see "Masking PHI" in the README).
RECALL_TARGETS: dict[str, float] = {
    "phone": 0.99,
    "fax": 0.99,
    "email": 0.99,
    "url": 0.99,
    "ip": 0.99,
    "ssn": 0.99,
    "mrn": 0.99,
    "account": 0.99,
    "record": 0.99,
    "date": 0.99,
    "zip": 0.9,
    "address": 0.9,
    "age_over_89": 0.9,
}
PHI_TYPES = (*RECALL_TARGETS, "name")
CLINICAL_KINDS = ("dose", "vital", "lab", "score", "size", "age_under_90")


@dataclass(frozen=True)
class Span:
    kind: str  # a PHI type or a clinical kind
    start: int
    end: int


@dataclass(frozen=True)
class Note:
    text: str
    phi: tuple[Span, ...]  # must be masked
    clinical: tuple[Span, ...]  # must be kept


Maker = Callable[[random.Random], str]

FIRST_NAMES = [
    "Maria", "James", "Aisha", "Wei", "Olga", "Carlos", "Priya", "Tomasz", "Fatima", "Liam",
    "Keiko", "Dmitri", "Grace", "Mateo", "Nia", "Henrik", "Yusuf", "Elena", "Kwame", "Sofia",
]  # fmt: skip
LAST_NAMES = [
    "Okafor", "Lindqvist", "Haddad", "Nakamura", "Brennan", "Castillo", "Novak", "Ferreira",
    "Mbeki", "Kowalski", "Abernathy", "Zhou", "Delacroix", "Ivanova", "McAllister", "Tanaka",
    "Quispe", "Oyelaran", "Van der Berg", "Smith",
]  # fmt: skip
STREET_NAMES = [
    "Maple", "Harbor View", "Elm", "Washington", "Cedar Hollow", "Lincoln", "Oak Ridge", "Pine",
    "Magnolia", "Sunset", "Riverside", "Chestnut", "Beacon", "Highland", "Juniper", "Willow Creek",
]  # fmt: skip
STREET_TYPES = [
    "Street", "St", "St.", "Avenue", "Ave", "Ave.", "Road", "Rd", "Boulevard", "Blvd", "Lane",
    "Ln", "Drive", "Dr", "Court", "Ct", "Way", "Place", "Terrace", "Circle", "Parkway", "Highway",
]  # fmt: skip
CITIES = [
    ("Springfield", "IL"), ("Fairview", "OR"), ("Riverton", "WY"), ("Georgetown", "TX"),
    ("Salem", "MA"), ("Franklin", "TN"), ("Clinton", "NY"), ("Madison", "WI"),
    ("Ashland", "KY"), ("Lakewood", "CO"), ("Greenville", "SC"), ("Bristol", "CT"),
    ("Santa Rosa", "CA"), ("Fort Collins", "CO"), ("Baton Rouge", "LA"), ("Ann Arbor", "MI"),
]  # fmt: skip
STATE_NAMES = ["Ohio", "Texas", "New York", "California", "Maine", "Oregon", "Georgia"]
DOMAINS = [
    "example.org", "mail.example.com", "clinic-a.example.net", "stmarys-health.example.org",
    "uni.example.edu", "example.co.uk", "patients.example.health",
]  # fmt: skip
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]  # fmt: skip


def digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(count))


def area_code(rng: random.Random) -> str:
    return f"{rng.randint(2, 9)}{digits(rng, 2)}"


def exchange(rng: random.Random) -> str:
    return f"{rng.randint(2, 9)}{digits(rng, 2)}"


def phone(rng: random.Random) -> str:
    area, exch, line = area_code(rng), exchange(rng), digits(rng, 4)
    layouts = [
        f"({area}) {exch}-{line}",
        f"({area}){exch}-{line}",
        f"{area}-{exch}-{line}",
        f"{area}.{exch}.{line}",
        f"{area} {exch} {line}",
        f"+1 {area} {exch} {line}",
        f"+1-{area}-{exch}-{line}",
        f"1-{area}-{exch}-{line}",
        f"+1 ({area}) {exch}-{line}",
        f"{area}{exch}{line}",
        f"{area}-{exch}-{line} ext. {rng.randint(1, 9999)}",
        f"({area}) {exch}-{line} x{rng.randint(10, 999)}",
        f"+44 20 {digits(rng, 4)} {digits(rng, 4)}",
        f"+33 1 {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)}",
        f"+49 30 {digits(rng, 8)}",
    ]
    return rng.choice(layouts)


def email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST_NAMES).lower(), rng.choice(LAST_NAMES).lower().replace(" ", "")
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first[0]}{last}{rng.randint(1, 99)}",
            f"{first}_{last}",
            f"{last}+portal",
            f"{first.upper()}.{last.upper()}",
            f"{first}{digits(rng, 3)}",
        ]
    )
    return f"{local}@{rng.choice(DOMAINS)}"


def url(rng: random.Random) -> str:
    domain = rng.choice(DOMAINS)
    path = rng.choice(["", "/portal", "/records/view?id=" + digits(rng, 5), "/a/b-c.html"])
    layouts = [
        f"https://{domain}{path}",
        f"http://www.{domain}{path}",
        f"www.{domain}{path}",
        f"https://{domain}:8443/login",
        f"{domain}{path or '/portal'}",
        f"HTTPS://{domain.upper()}/Results",
        f"ftp://files.{domain}/scan_{digits(rng, 4)}.pdf",
    ]
    return rng.choice(layouts)


def ip_address(rng: random.Random) -> str:
    octets = ".".join(str(rng.randint(0, 255)) for _ in range(3))
    v4 = f"{rng.randint(1, 223)}.{octets}"
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    layouts = [
        v4,
        f"{v4}:{rng.randint(1024, 65535)}",
        ":".join(groups),
        f"fe80::{groups[1]}:{groups[2]}",
        f"2001:db8::{groups[3]}",
    ]
    return rng.choice(layouts)


def date(rng: random.Random) -> str:
    year = rng.randint(1930, 2030)
    month = rng.randint(1, 12)
    day = rng.randint(1, 28)
    name = MONTHS[month - 1]
    short = name[:3]
    ordinal = f"{day}{'th' if 11 <= day <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th')}"
    layouts = [
        f"{month:02d}/{day:02d}/{year}",
        f"{month}/{day}/{year % 100:02d}",
        f"{month}/{day}/{year}",
        f"{year}-{month:02d}-{day:02d}",
        f"{year}/{month:02d}/{day:02d}",
        f"{day:02d}.{month:02d}.{year}",
        f"{month:02d}-{day:02d}-{year}",
        f"{day} {short} {year}",
        f"{name} {day}, {year}",
        f"{day:02d}-{short}-{year}",
        f"{day:02d}-{short.upper()}-{year}",
        f"{short}. {day}, {year}",
        f"{short} {day} {year}",
        f"{ordinal} of {name} {year}",
        f"{name} {ordinal}, {year}",
        f"{day}-{name}-{year % 100:02d}",
        f"{name} {year}",
        f"{month}/{year}",
        f"{name} {day}",
        f"{day} {name}",
        f"{year}-{month:02d}-{day:02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
        f"{year}{month:02d}{day:02d}",
        f"Tuesday, {name} {day}, {year}",
    ]
    return rng.choice(layouts)


def ssn(rng: random.Random) -> str:
    area, group, serial = f"{rng.randint(1, 899):03d}", digits(rng, 2), digits(rng, 4)
    return rng.choice(
        [f"{area}-{group}-{serial}", f"{area} {group} {serial}", f"{area}.{group}.{serial}"]
    )


def mrn(rng: random.Random) -> str:
    return rng.choice(
        [
            digits(rng, 8),
            digits(rng, 7),
            f"00{digits(rng, 6)}",
            f"{rng.choice('ABCMX')}{digits(rng, 7)}",
            f"{digits(rng, 3)}-{digits(rng, 3)}-{digits(rng, 2)}",
            f"{digits(rng, 2)}-{digits(rng, 5)}",
            f"MR{digits(rng, 6)}",
        ]
    )


def account(rng: random.Random) -> str:
    return rng.choice(
        [
            f"{digits(rng, 2)}-{digits(rng, 7)}",
            digits(rng, 9),
            f"{digits(rng, 5)}-{digits(rng, 2)}",
            f"ACC{digits(rng, 6)}",
            f"{digits(rng, 4)} {digits(rng, 4)}",
        ]
    )


def record(rng: random.Random) -> str:
    letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(3))
    return rng.choice(
        [
            f"{letters}{digits(rng, 9)}",
            f"PL-{digits(rng, 5)}-{digits(rng, 2)}",
            f"E{digits(rng, 8)}",
            f"S{rng.randint(10, 29)}-{digits(rng, 5)}",
            f"{rng.randint(2000, 2030)}-{digits(rng, 5)}-{rng.randint(1, 9)}",
            f"{digits(rng, 4)}-{digits(rng, 3)}",
            digits(rng, 10),
        ]
    )


def zip_code(rng: random.Random) -> str:
    return rng.choice([f"{digits(rng, 5)}", f"{digits(rng, 5)}-{digits(rng, 4)}"])


def address(rng: random.Random) -> str:
    number = rng.choice([str(rng.randint(1, 9999)), f"{rng.randint(1, 999)}B"])
    street = rng.choice(STREET_NAMES)
    kind = rng.choice(STREET_TYPES)
    direction = rng.choice(["", "", "North ", "W. ", "E "])
    unit = rng.choice(["", "", f", Apt {rng.randint(1, 40)}{rng.choice('ABC')}", " Suite 200"])
    layouts = [
        f"{number} {direction}{street} {kind}{unit}",
        f"{number} {rng.randint(2, 99)}th {kind}",
        f"P.O. Box {rng.randint(1, 99999)}",
        f"PO Box {rng.randint(1, 9999)}",
        f"{number} {street} {kind} NW",
    ]
    return rng.choice(layouts)


def age_over_89(rng: random.Random) -> str:
    age = rng.randint(90, 109)
    return str(age)


def name(rng: random.Random) -> str:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return rng.choice([f"{first} {last}", f"{last}, {first}", f"{first[0]}. {last}", last])


def dose(rng: random.Random) -> str:
    return rng.choice(
        [
            "1000000 units",
            "500 mg",
            "vitamin D 1000000 units",
            "vitamin D3 50000 IU",
            "heparin 5000 units",
            "penicillin G 2400000 units",
            "insulin glargine 20 units",
            f"{rng.choice([250, 500, 875, 1000])} mg",
            f"{rng.choice(['0.5', '25', '125'])} mcg",
            "10 mg/kg",
            "100000 IU",
            "2 tablets",
            "1200000 units",
            f"{rng.choice([5, 10, 40])} mg daily",
        ]
    )


def vital(rng: random.Random) -> str:
    return rng.choice(
        [
            f"BP {rng.randint(90, 180)}/{rng.randint(50, 110)}",
            f"HR {rng.randint(50, 130)}",
            f"RR {rng.randint(12, 30)}",
            f"T {rng.randint(36, 39)}.{rng.randint(0, 9)}",
            f"Temp {rng.randint(97, 103)}.{rng.randint(0, 9)} F",
            f"SpO2 {rng.randint(85, 100)}%",
            f"weight {rng.randint(40, 140)}.{rng.randint(0, 9)} kg",
            f"BP {rng.randint(90, 180)}/{rng.randint(50, 110)} mmHg",
            f"pulse {rng.randint(50, 130)} bpm",
        ]
    )


def lab(rng: random.Random) -> str:
    return rng.choice(
        [
            f"Na {rng.randint(125, 150)}",
            f"K {rng.randint(3, 6)}.{rng.randint(0, 9)}",
            f"WBC {rng.randint(2, 25)}.{rng.randint(0, 9)}",
            f"Plt {rng.randint(50, 450)}000",
            f"Hgb {rng.randint(7, 17)}.{rng.randint(0, 9)}",
            f"Cr {rng.randint(0, 4)}.{rng.randint(0, 9)}",
            f"INR {rng.randint(1, 4)}.{rng.randint(0, 9)}",
            f"HbA1c {rng.randint(5, 12)}.{rng.randint(0, 9)}%",
            f"BNP {rng.randint(100, 5000)}",
            f"viral load {rng.randint(1000, 999999)} copies/mL",
            f"glucose {rng.randint(60, 400)} mg/dL",
            f"CD4 {rng.randint(50, 1200)}",
            f"troponin 0.{rng.randint(1, 99):02d}",
            f"platelets {rng.randint(50, 450)}000",
        ]
    )


def score(rng: random.Random) -> str:
    primary, secondary = rng.randint(3, 5), rng.randint(3, 5)
    return rng.choice(
        [
            f"Gleason {primary}+{secondary}={primary + secondary}",
            f"GCS {rng.randint(3, 15)}",
            f"APGAR {rng.randint(5, 9)}/{rng.randint(7, 10)}",
            f"NIHSS {rng.randint(0, 30)}",
            f"MMSE {rng.randint(10, 30)}/30",
            f"PHQ-9 {rng.randint(0, 27)}",
            f"ECOG {rng.randint(0, 4)}",
            f"EF {rng.randint(15, 70)}%",
        ]
    )


def size(rng: random.Random) -> str:
    def measure() -> str:
        return f"{rng.randint(0, 9)}.{rng.randint(1, 9)}"

    return rng.choice(
        [
            f"{measure()} cm",
            f"{measure()} x {measure()} cm",
            f"{measure()} x {measure()} x {measure()} cm",
            f"{rng.randint(2, 40)} mm",
        ]
    )


def age_under_90(rng: random.Random) -> str:
    return str(rng.randint(18, 89))


MAKERS: dict[str, Maker] = {
    "phone": phone,
    "fax": phone,
    "email": email,
    "url": url,
    "ip": ip_address,
    "date": date,
    "ssn": ssn,
    "mrn": mrn,
    "account": account,
    "record": record,
    "zip": zip_code,
    "address": address,
    "age_over_89": age_over_89,
    "name": name,
    "dose": dose,
    "vital": vital,
    "lab": lab,
    "score": score,
    "size": size,
    "age_under_90": age_under_90,
}

# Sentences with slots: {kind} is replaced by a value of that kind, and its span recorded.
TEMPLATES: dict[str, list[str]] = {
    "phone": [
        "Call {phone} with questions.",
        "Patient can be reached at {phone}.",
        "Daughter's cell: {phone}",
        "Phone: {phone}",
        "Tel {phone} (home)",
        "Contact number {phone}; leave a message.",
        "Spoke with wife at {phone} regarding {dose}.",
        "{phone} is the best number after 5pm.",
        "Pharmacy called back from {phone}.",
        "Mobile - {phone}",
    ],
    "fax": [
        "Fax: {fax}",
        "Records faxed to {fax} on request.",
        "Send the referral by fax ({fax}).",
        "FAX {fax} attn: cardiology",
    ],
    "email": [
        "Email {email} for the portal invite.",
        "Patient prefers contact by e-mail: {email}.",
        "Results sent to {email}",
        "<{email}> requested a copy of the note.",
        "Contact: {email}, {phone}",
    ],
    "url": [
        "Education material at {url}.",
        "See {url} for the after-visit summary",
        "Portal: {url}",
        "Uploaded images to {url} (expires in 7 days).",
        "Link {url}",
    ],
    "ip": [
        "Video visit connected from {ip}.",
        "Login from IP {ip} flagged.",
        "Device address {ip}, session 3.",
        "Remote monitor at {ip} reported {vital}.",
    ],
    "date": [
        "Seen on {date} for follow-up.",
        "DOB: {date}",
        "Admitted {date}; discharged {date}.",
        "Last colonoscopy {date}, normal.",
        "Surgery scheduled for {date}.",
        "{date}: {vital}, {lab}.",
        "Started {dose} on {date}.",
        "Date of service {date}",
        "Follow up {date} with labs ({lab}).",
        "MRI ({date}) shows a {size} lesion.",
    ],
    "ssn": [
        "SSN {ssn}",
        "Social security number: {ssn}.",
        "SS# {ssn} on file.",
        "Insurance card lists {ssn}.",
    ],
    "mrn": [
        "MRN: {mrn}",
        "MRN {mrn}.",
        "MR# {mrn}",
        "Medical record number {mrn}",
        "Chart #: {mrn}",
        "Med Rec No. {mrn}",
        "mrn:{mrn}",
    ],
    "account": [
        "Acct #: {account}",
        "Account number {account}.",
        "Billing account no. {account}",
        "acct {account}",
        "A/C {account}",
    ],
    "record": [
        "Member ID: {record}",
        "Policy number: {record}",
        "Encounter #: {record}",
        "Accession no. {record}",
        "Claim number {record}",
        "Patient ID {record}",
        "Health plan ID {record}",
        "Specimen ID: {record}",
        "Subscriber ID {record}",
        "License number: {record}",
    ],
    "address": [
        "Lives at {address}, {city_state} {zip}.",
        "Home address: {address}",
        "Discharged to daughter's home, {address}.",
        "Mailing address {address}, {city_state} {zip}",
        "Moved to {address} last month.",
        "Address on file: {address}; {city_state} {zip}",
    ],
    "zip": [
        "ZIP {zip}",
        "Zip code: {zip}",
        "{city_state} {zip}",
        "Lives in {city}, {state_name} {zip}.",
        "Postal code {zip}",
    ],
    "age_over_89": [
        "{age_over_89}-year-old woman with CHF.",
        "{age_over_89} y/o M presents with syncope.",
        "Pt is a {age_over_89} yo F.",
        "Age: {age_over_89}",
        "aged {age_over_89}, lives alone",
        "{age_over_89} years old, DNR.",
        "A {age_over_89} year old man, {vital}.",
        "age {age_over_89}",
    ],
    "name": [
        "Seen with {name}.",
        "Dr. {name} consulted.",
        "Patient: {name}",
        "Discussed with {name} (son).",
    ],
    "clinical": [
        "Given {dose}.",
        "Continue {dose} daily.",
        "Vitals: {vital}, {vital}, {vital}.",
        "Labs: {lab}, {lab}, {lab}.",
        "{score} on biopsy.",
        "Score {score}.",
        "Mass measures {size}.",
        "Nodule {size}, stable.",
        "{age_under_90} y/o with {lab}.",
        "{age_under_90}-year-old, {vital}.",
        "age {age_under_90}, {score}",
        "Ordered {dose} IM x1, {vital}.",
        "Replete: {lab}; {dose} given.",
    ],
}

_SLOT = re.compile(r"\{(\w+)\}")


def _fill(template: str, rng: random.Random, offset: int) -> tuple[str, list[Span], list[Span]]:
    """The sentence and the spans of its PHI and clinical values, offset into the note."""
    pieces: list[str] = []
    phi: list[Span] = []
    clinical: list[Span] = []
    position = offset
    last = 0
    for slot in _SLOT.finditer(template):
        literal = template[last : slot.start()]
        pieces.append(literal)
        position += len(literal)
        kind = slot.group(1)
        if kind == "city_state":
            city, state = rng.choice(CITIES)
            value = f"{city}, {state}"
        elif kind == "city":
            value = rng.choice(CITIES)[0]
        elif kind == "state_name":
            value = rng.choice(STATE_NAMES)
        else:
            value = MAKERS[kind](rng)
            target = clinical if kind in CLINICAL_KINDS else phi
            target.append(Span(kind, position, position + len(value)))
        pieces.append(value)
        position += len(value)
        last = slot.end()
    pieces.append(template[last:])
    return "".join(pieces), phi, clinical


def generate_note(rng: random.Random) -> Note:
    kinds = [*PHI_TYPES, "clinical"]
    chosen = [*rng.sample(kinds, rng.randint(3, 6)), "clinical"]
    rng.shuffle(chosen)
    sentences: list[str] = []
    phi: list[Span] = []
    clinical: list[Span] = []
    length = 0
    for kind in chosen:
        if sentences:
            length += 1  # the space between sentences
        text, found_phi, found_clinical = _fill(rng.choice(TEMPLATES[kind]), rng, length)
        sentences.append(text)
        phi += found_phi
        clinical += found_clinical
        length += len(text)
    return Note(" ".join(sentences), tuple(phi), tuple(clinical))


def generate_corpus(notes: int = 1500, seed: int = SEED) -> list[Note]:
    """`notes` notes, the same for the same seed on any machine."""
    rng = random.Random(seed)
    return [generate_note(rng) for _ in range(notes)]


@dataclass
class Score:
    """How a masker did on a corpus: per PHI type, found/total; per clinical kind, kept/total."""

    found: dict[str, int]
    phi_total: dict[str, int]
    kept: dict[str, int]
    clinical_total: dict[str, int]
    missed: list[tuple[str, str]]  # (type, value) of PHI left unmasked
    eaten: list[tuple[str, str]]  # (kind, value) of clinical values touched by a mask

    def recall(self, kind: str) -> float:
        return self.found[kind] / self.phi_total[kind]

    def kept_share(self) -> float:
        return sum(self.kept.values()) / sum(self.clinical_total.values())


def _covered(span: Span, masked: list[tuple[int, int]], text: str) -> bool:
    """Every character of the span that identifies (not spaces or punctuation) is masked."""
    return all(
        any(start <= index < end for start, end in masked)
        for index in range(span.start, span.end)
        if text[index].isalnum()
    )


def score(corpus: list[Note], find: Callable[[str], list[tuple[int, int]]]) -> Score:
    """Score `find`, which gives the (start, end) of what it masks in a text."""
    result = Score(
        found=dict.fromkeys(PHI_TYPES, 0),
        phi_total=dict.fromkeys(PHI_TYPES, 0),
        kept=dict.fromkeys(CLINICAL_KINDS, 0),
        clinical_total=dict.fromkeys(CLINICAL_KINDS, 0),
        missed=[],
        eaten=[],
    )
    for note in corpus:
        masked = find(note.text)
        for span in note.phi:
            result.phi_total[span.kind] += 1
            if _covered(span, masked, note.text):
                result.found[span.kind] += 1
            else:
                result.missed.append((span.kind, note.text[span.start : span.end]))
        for span in note.clinical:
            result.clinical_total[span.kind] += 1
            if any(start < span.end and span.start < end for start, end in masked):
                result.eaten.append((span.kind, note.text[span.start : span.end]))
            else:
                result.kept[span.kind] += 1
    return result
