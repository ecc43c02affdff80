"""Generate a small SYNTHETIC corpus of clinical-style notes for the bertpipe pipeline.

Nothing here comes from real patients or from any external data set: every note is
assembled from hand-written templates and vocabulary lists in this file, driven by a
seeded ``random.Random``, so the same arguments always give a byte-identical CSV.

Each patient gets a primary specialty (5 imbalanced classes) and 1-4 notes. A note is
built from sections (header, history, vitals, exam/tests, assessment, plan) that mix
class-specific phrases with a large pool of generic ones shared by every class. To keep
the classification task honest (not trivially separable) the generator also adds:

* ambiguous notes that combine symptoms of two organ systems, labelled with either one;
* home-medication lists and past history drawn from every specialty;
* ~3% label noise;
* surface noise a cleaning stage should handle: typos, ALL CAPS / lowercase notes, mixed
  date formats, phone numbers, e-mails, MRNs, tabs / double spaces, non-ASCII characters
  that NFKC normalisation changes (ligatures, micro sign, no-break space);
* a few exact duplicate rows and whitespace-only texts.

Usage: python scripts/make_sample.py [--output PATH] [--rows N] [--seed N]
"""

from __future__ import annotations

import argparse
import csv
import random
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "data" / "raw" / "notes.csv"

# Class priors (imbalanced on purpose so stratification and class weights matter).
CLASS_WEIGHTS: dict[str, float] = {
    "cardiology": 0.35,
    "neurology": 0.25,
    "gastroenterology": 0.18,
    "pulmonology": 0.14,
    "endocrinology": 0.08,
}
LABELS = list(CLASS_WEIGHTS)

# Per-class vocabulary. Kept short and partly overlapping (dizziness, fatigue, nausea,
# tremor, chest pain ...) because real specialties share symptoms.
VOCAB: dict[str, dict[str, list[str]]] = {
    "cardiology": {
        "sym": [
            "chest pain",
            "chest pressure",
            "palpitations",
            "orthopnea",
            "leg swelling",
            "PND",
            "near-syncope",
            "DOE",
            "dizziness",
            "fatigue",
        ],
        "exam": [
            "irregularly irregular rhythm",
            "2/6 systolic murmur",
            "JVD",
            "1+ pitting edema",
            "S3 gallop",
            "regular rate and rhythm",
        ],
        "test": [
            "ECG w/ ST depression V4-V6",
            "EKG: AFib w/ RVR",
            "troponin neg x2",
            "echo EF 35%",
            "BNP 890",
            "stress test ordered",
            "Holter placed",
        ],
        "dx": [
            "stable angina",
            "new onset AFib",
            "CHF exacerbation",
            "HTN urgency",
            "SVT",
            "r/o NSTEMI",
        ],
        "med": [
            "metoprolol 25 mg BID",
            "apixaban 5 mg BID",
            "furosemide 40 mg daily",
            "atorvastatin 80 mg qhs",
            "ASA 81 mg daily",
            "nitroglycerin SL prn",
        ],
    },
    "neurology": {
        "sym": [
            "headache",
            "numbness L arm",
            "tingling in feet",
            "dizziness",
            "tremor",
            "word-finding difficulty",
            "episodes of LOC",
            "blurred vision",
            "memory lapses",
            "unsteady gait",
        ],
        "exam": [
            "L facial droop",
            "decreased sensation in feet",
            "reflexes 1+ symmetric",
            "cogwheel rigidity",
            "pos Romberg",
            "nystagmus on L gaze",
        ],
        "test": [
            "MRI brain ordered",
            "CT head neg for bleed",
            "EEG w/ focal slowing",
            "EMG/NCS pending",
            "MoCA 22/30",
        ],
        "dx": [
            "TIA",
            "migraine w/ aura",
            "peripheral neuropathy",
            "parkinsonism",
            "seizure d/o",
            "r/o MS",
        ],
        "med": [
            "levetiracetam 500 mg BID",
            "sumatriptan 50 mg prn",
            "gabapentin 300 mg TID",
            "topiramate 25 mg qhs",
            "carbidopa/levodopa TID",
            "cyanocobalamin 1000 µg daily",
        ],
    },
    "gastroenterology": {
        "sym": [
            "epigastric pain",
            "heartburn",
            "nausea",
            "vomiting",
            "bloating",
            "diarrhea",
            "constipation",
            "melena",
            "BRBPR",
            "dysphagia",
            "RUQ pain",
            "weight loss",
        ],
        "exam": [
            "mild epigastric TTP",
            "hepatomegaly",
            "guaiac pos stool",
            "no rebound or guarding",
            "hyperactive bowel sounds",
        ],
        "test": [
            "EGD scheduled",
            "colonoscopy w/ 2 polyps",
            "ALT 112",
            "lipase wnl",
            "H. pylori ag pos",
            "RUQ US w/ gallstones",
        ],
        "dx": ["GERD", "PUD", "IBS", "gastritis", "cholelithiasis", "UC flare", "NAFLD"],
        "med": [
            "omeprazole 20 mg BID",
            "pantoprazole 40 mg daily",
            "ondansetron 4 mg prn",
            "mesalamine",
            "sucralfate 1 g QID",
            "PEG 3350 daily",
        ],
    },
    "pulmonology": {
        "sym": [
            "SOB",
            "productive cough",
            "wheezing",
            "dyspnea on exertion",
            "dry cough",
            "hemoptysis",
            "pleuritic chest pain",
            "daytime somnolence",
            "fatigue",
        ],
        "exam": [
            "diffuse expiratory wheezes",
            "crackles at R base",
            "decreased BS L base",
            "prolonged expiration",
            "accessory muscle use",
        ],
        "test": [
            "CXR w/ RLL infiltrate",
            "PFTs FEV1/FVC 0.62",
            "CT chest w/ 8 mm nodule",
            "ABG 7.34/52/68",
            "sleep study ordered",
            "peak flow 250",
        ],
        "dx": [
            "COPD exacerbation",
            "asthma, poorly controlled",
            "CAP",
            "OSA",
            "pulm nodule",
            "r/o ILD",
        ],
        "med": [
            "albuterol inh q4h prn",
            "tiotropium daily",
            "fluticasone/salmeterol BID",
            "prednisone 40 mg x5d",
            "azithromycin",
            "montelukast 10 mg qhs",
        ],
    },
    "endocrinology": {
        "sym": [
            "polyuria",
            "polydipsia",
            "weight gain",
            "fatigue",
            "heat intolerance",
            "cold intolerance",
            "hair thinning",
            "tremor",
            "low BG episodes",
            "weight loss",
        ],
        "exam": [
            "thyromegaly",
            "acanthosis nigricans",
            "moon facies",
            "fine tremor of hands",
            "decreased monofilament sensation",
        ],
        "test": [
            "A1c 9.2%",
            "TSH 0.02",
            "TSH 8.4, free T4 low",
            "fasting glucose 212",
            "AM cortisol low",
            "thyroid US w/ 1.5 cm nodule",
        ],
        "dx": [
            "DM2, uncontrolled",
            "hypothyroidism",
            "Graves disease",
            "prediabetes",
            "thyroid nodule",
            "r/o adrenal insufficiency",
        ],
        "med": [
            "metformin 1000 mg BID",
            "insulin glargine 20 units qhs",
            "levothyroxine 75 µg daily",
            "methimazole 10 mg daily",
            "semaglutide 0.5 mg weekly",
        ],
    },
}

# Symptom bridges for ambiguous notes: (class A, class B, shared phrases). The label is
# drawn from the pair at random, so no model can be certain about these rows.
AMBIGUOUS: list[tuple[str, str, list[str]]] = [
    ("cardiology", "pulmonology", ["chest pain", "SOB", "DOE", "leg swelling"]),
    ("cardiology", "neurology", ["syncope", "transient dizziness", "brief LOC"]),
    ("cardiology", "gastroenterology", ["epigastric burning w/ exertion", "chest discomfort"]),
    ("neurology", "endocrinology", ["burning pain in feet", "numbness in both feet"]),
    ("gastroenterology", "endocrinology", ["nausea and early satiety", "weight loss"]),
    ("pulmonology", "gastroenterology", ["chronic cough w/ reflux", "choking on liquids"]),
    ("cardiology", "endocrinology", ["palpitations", "tremor", "heat intolerance"]),
    ("neurology", "pulmonology", ["morning headaches", "daytime somnolence"]),
]

GENERIC_PMH = [
    "HTN",
    "DM2",
    "HLD",
    "obesity",
    "GERD",
    "CKD3",
    "depression",
    "OA",
    "asthma",
    "hypothyroidism",
    "tobacco use",
    "anxiety",
    "migraines",
    "CAD",
]
GENERIC_SYM = [
    "fatigue",
    "poor sleep",
    "mild nausea",
    "low back pain",
    "anxiety",
    "decreased appetite",
    "malaise",
    "dizziness",
]
GENERIC_PLAN = [
    "f/u 2 wks",
    "RTC in 3 mo",
    "return prn",
    "ED precautions reviewed",
    "cont current meds",
    "labs: CBC, BMP",
    "pt verbalized understanding",
    "med rec done",
    "diet and exercise counseled",
    "smoking cessation counseled",
    "f/u w/ PCP",
    "will call w/ results",
    "final plan discussed w/ family",
]
OPENERS = [
    "Clinic visit",
    "F/u visit",
    "Progress note",
    "New pt eval",
    "Telehealth visit",
    "Office note",
    "Sick visit",
]
SURNAMES = ["smith", "patel", "nguyen", "okafor", "garcia", "kowalski", "lindqvist", "haddad"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

# Knobs tuned so TF-IDF + logistic regression lands near 0.8 accuracy (stratified 70/30).
P_AMBIGUOUS = 0.14  # notes mixing two systems
P_LABEL_NOISE = 0.03  # label replaced by a random other class
P_OFF_LABEL = 0.05  # a note of a patient that belongs to another specialty
P_SECTION = 0.5  # chance each class-specific section (exam, test, dx, med) appears
P_DISTRACTOR = 0.20  # chance a specific phrase comes from a random (comorbid) specialty
P_TYPO = 0.03  # per-word chance of a character swap / drop
N_DUPLICATES = 10
N_EMPTY = 3


def fmt_date(rng: random.Random) -> str:
    """A visit date in one of several formats, as different EHR exports would write it."""
    y, m, d = rng.choice([2023, 2024, 2025]), rng.randint(1, 12), rng.randint(1, 28)
    style = rng.randrange(4)
    if style == 0:
        return f"{y}-{m:02d}-{d:02d}"
    if style == 1:
        return f"{m:02d}/{d:02d}/{y}"
    if style == 2:
        return f"{d} {MONTHS[m - 1]} {y}"
    return f"{m}/{d}/{y % 100:02d}"


def fmt_contact(rng: random.Random) -> str:
    """A phone number, e-mail or MRN: PII-like strings a cleaning step may mask."""
    a, b, c = rng.randint(200, 999), rng.randint(100, 999), rng.randint(0, 9999)
    choice = rng.randrange(5)
    if choice == 0:
        return f"Call 555-{b}-{c:04d} w/ questions."
    if choice == 1:
        return f"Contact ({a}) {b} {c:04d}."
    if choice == 2:
        return f"Msg dr.{rng.choice(SURNAMES)}@clinic.example for results."
    if choice == 3:
        return f"MRN {rng.randint(0, 99_999_999):08d}."
    return f"mrn#{rng.randint(1_000_000, 9_999_999)}, ph {a}.{b}.{c:04d}."


def vitals(rng: random.Random) -> str:
    """A random subset of vitals: generic content shared by every class."""
    parts = [
        f"BP {rng.randint(105, 175)}/{rng.randint(60, 100)}",
        f"HR {rng.randint(55, 118)}",
        f"T {rng.randint(970, 1013) / 10}°F"
        if rng.random() < 0.7
        else f"T {rng.randint(362, 385) / 10} °C",
        f"SpO2 {rng.randint(88, 100)}% RA",
        f"RR {rng.randint(12, 24)}",
    ]
    return "Vitals: " + ", ".join(rng.sample(parts, rng.randint(2, 5))) + "."


def build_note(
    rng: random.Random,
    label: str,
    pair: tuple[str, str, list[str]] | None,
    pmh: list[str],
    age: int,
    sex: str,
) -> str:
    """Assemble one note. With ``pair`` set, content comes from both systems of the pair."""
    systems = [pair[0], pair[1]] if pair else [label]

    def pick(key: str) -> str:
        # Now and then a section is about a comorbidity (another specialty), as in real
        # notes; this keeps single keywords from deciding the class.
        src = rng.choice(LABELS) if rng.random() < P_DISTRACTOR else rng.choice(systems)
        return rng.choice(VOCAB[src][key])

    # Symptoms: 1-2 class phrases, often padded with generic ones that carry no signal.
    syms = [pick("sym") for _ in range(rng.randint(1, 2))]
    if pair:
        syms.append(rng.choice(pair[2]))
    if rng.random() < 0.6:
        syms.append(rng.choice(GENERIC_SYM))
    syms = list(dict.fromkeys(syms))  # no "cough and cough"
    rng.shuffle(syms)
    sents = [f"{rng.choice(OPENERS)} {fmt_date(rng)}."]
    sents.append(
        f"{age} y/o {sex} w/ hx {', '.join(pmh)} c/o {' and '.join(syms)} "
        f"x {rng.randint(2, 14)} {rng.choice(['days', 'wks', 'mo'])}."
    )
    # Home meds come from any specialty (comorbidities), a realistic distractor.
    home = [
        rng.choice(VOCAB[rng.choice(LABELS)]["med"]).split(" ")[0] for _ in range(rng.randint(0, 3))
    ]
    if home:
        sents.append(f"Home meds: {', '.join(dict.fromkeys(home))}.")
    sents.append(vitals(rng))
    # Each specific section is optional, so some notes carry only a weak signal.
    if rng.random() < P_SECTION:
        sents.append(f"Exam: {pick('exam')}.")
    if rng.random() < P_SECTION:
        sents.append(f"{pick('test')}.")
    if pair and rng.random() < 0.5:
        a, b = (rng.choice(VOCAB[x]["dx"]) for x in pair[:2])
        sents.append(f"A/P: ddx {a} vs {b}.")
    elif rng.random() < P_SECTION:
        sents.append(f"A/P: {pick('dx')}.")
    else:
        sents.append("A/P: symptoms likely multifactorial, workup as below.")
    if rng.random() < P_SECTION:
        sents.append(f"Start {pick('med')}.")
    sents += [f"{p}." for p in rng.sample(GENERIC_PLAN, rng.randint(1, 3))]
    if rng.random() < 0.35:
        sents.append(fmt_contact(rng))
    return " ".join(sents)


def typo(rng: random.Random, word: str) -> str:
    """Swap two adjacent letters or drop one: the commonest keyboard slips."""
    i = rng.randrange(len(word) - 1)
    if rng.random() < 0.5:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + word[i + 1 :]


def add_noise(rng: random.Random, text: str) -> str:
    """Surface noise that tokenisers and cleaning code must cope with."""
    words = [
        typo(rng, w) if w.isalpha() and len(w) > 3 and rng.random() < P_TYPO else w
        for w in text.split(" ")
    ]
    # Irregular whitespace: doubled spaces, tabs, no-break spaces (NFKC turns U+00A0 into a
    # plain space).
    seps = [
        rng.choices([" ", "  ", "\t", "\u00a0"], weights=[98.5, 0.8, 0.35, 0.35])[0]
        for _ in words[1:]
    ]
    text = words[0] + "".join(s + w for s, w in zip(seps, words[1:], strict=True))
    if rng.random() < 0.08:  # typographic ligatures from PDF/OCR exports
        text = text.replace("fi", "\ufb01").replace("fl", "\ufb02")
    r = rng.random()
    if r < 0.06:  # some systems export everything upper-case
        text = text.upper()
    elif r < 0.14:
        text = text.lower()
    if rng.random() < 0.05:
        text = rng.choice(["  ", "\t", " \t"]) + text + rng.choice([" ", "\t", "  "])
    return text


def generate(n_rows: int, seed: int) -> list[dict[str, object]]:
    """Return ``n_rows`` rows (notes, then duplicates and blanks) in shuffled order."""
    rng = random.Random(seed)
    n_notes = n_rows - N_DUPLICATES - N_EMPTY
    patient_nums = rng.sample(range(1, 10_000), n_notes)  # upper bound; not all are used
    rows: list[dict[str, object]] = []
    p = 0
    while len(rows) < n_notes:
        # Quota-style draw: favour classes that are behind their prior, so the final
        # shares stay close to CLASS_WEIGHTS despite 1-4 notes per patient and label flips.
        counts = Counter(r["label"] for r in rows)
        deficit = [w * (len(rows) + 3) - counts[c] for c, w in CLASS_WEIGHTS.items()]
        primary = rng.choices(LABELS, weights=[max(d, 0.0) + 0.1 for d in deficit])[0]
        age, sex = rng.randint(19, 92), rng.choice(["M", "F", "male", "female"])
        pmh = rng.sample(GENERIC_PMH, rng.randint(1, 3))  # stable per patient, like a chart
        pid = f"P{patient_nums[p]:04d}"
        p += 1
        for _ in range(rng.choices([1, 2, 3, 4], weights=[30, 30, 25, 15])[0]):
            if len(rows) >= n_notes:
                break
            label = primary
            if rng.random() < P_OFF_LABEL:
                label = rng.choices(LABELS, weights=list(CLASS_WEIGHTS.values()))[0]
            pair = None
            if rng.random() < P_AMBIGUOUS:
                cands = [t for t in AMBIGUOUS if label in t[:2]]
                pair = rng.choice(cands)
                label = rng.choice(pair[:2])
            text = add_noise(rng, build_note(rng, label, pair, pmh, age, sex))
            if rng.random() < P_LABEL_NOISE:
                label = rng.choice([x for x in LABELS if x != label])
            rows.append({"patient_id": pid, "text": text, "label": label})
    # Exact duplicates (double-submitted notes) and blank texts for the cleaning stage.
    # Only patients with < 4 notes are duplicated so every patient keeps 1-4 rows.
    counts = Counter(r["patient_id"] for r in rows)
    one_each = {r["patient_id"]: r for r in rows if counts[r["patient_id"]] < 4}
    rows += [dict(r) for r in rng.sample(list(one_each.values()), N_DUPLICATES)]
    rows += [
        {"patient_id": f"P{patient_nums[p + i]:04d}", "text": t, "label": rng.choice(LABELS)}
        for i, t in enumerate(["", "   ", "\t \t"])
    ]
    rng.shuffle(rows)
    for i, r in enumerate(rows):
        r["note_id"] = 100_001 + i
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="CSV to write (default: data/raw/notes.csv in the repo)",
    )
    ap.add_argument(
        "--rows",
        type=int,
        default=1600,
        help="total rows, duplicates and blanks included (default: 1600)",
    )
    ap.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = ap.parse_args()
    # Below ~100 rows there are too few patients to draw the duplicate rows from.
    if args.rows < 100:
        ap.error("--rows must be at least 100")
    rows = generate(args.rows, args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # Fixed newline and encoding so the file is byte-identical on every platform.
    with args.output.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(
            f, fieldnames=["note_id", "patient_id", "text", "label"], lineterminator="\n"
        )
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.output}")


if __name__ == "__main__":
    main()
