"""PHI masking on the generated corpus: recall per PHI type, the share of clinical values kept.

The corpus is tests/phi_corpus.py (seeded, made-up values; no real data). A PHI value counts as
found when every letter and digit of it is inside a masked span; a clinical value counts as kept
when no masked span touches it. Also prints the speed of mask_phi alone (notes a second, one
process).

    .venv/bin/python benchmarks/phi.py
    .venv/bin/python benchmarks/phi.py --notes 5000 --seed 7 --show-missed 20
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the corpus lives with the tests that assert on it

from phi_corpus import (  # noqa: E402
    CLINICAL_KINDS,
    PHI_TYPES,
    RECALL_TARGETS,
    SEED,
    generate_corpus,
    score,
)

from bertpipe.text import find_phi, mask_phi  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=1500, help="notes to generate")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--show-missed", type=int, default=0, help="print this many misses")
    args = parser.parse_args()

    corpus = generate_corpus(args.notes, args.seed)
    started = time.perf_counter()
    for note in corpus:
        mask_phi(note.text)
    seconds = time.perf_counter() - started
    result = score(corpus, lambda text: [(span.start, span.end) for span in find_phi(text)])

    print(f"{args.notes} notes, seed {args.seed}; Python {platform.python_version()}")
    print(f"{'PHI type':<14}{'found':>7}{'total':>7}{'recall':>9}{'target':>8}")
    for kind in PHI_TYPES:
        target = RECALL_TARGETS.get(kind)
        print(
            f"{kind:<14}{result.found[kind]:>7}{result.phi_total[kind]:>7}"
            f"{result.recall(kind):>9.4f}{'' if target is None else f'{target:.2f}':>8}"
        )
    print(f"{'clinical':<14}{'kept':>7}{'total':>7}")
    for kind in CLINICAL_KINDS:
        print(f"{kind:<14}{result.kept[kind]:>7}{result.clinical_total[kind]:>7}")
    print(f"clinical values kept: {result.kept_share():.4f}")
    characters = sum(len(note.text) for note in corpus)
    print(
        f"masking speed: {len(corpus) / seconds:,.0f} notes/s "
        f"({characters / seconds / 1e6:.2f} M characters/s, mask_phi alone)"
    )
    for kind, value in result.missed[: args.show_missed]:
        print(f"missed {kind}: {value!r}")
    for kind, value in result.eaten[: args.show_missed]:
        print(f"eaten {kind}: {value!r}")


if __name__ == "__main__":
    main()
