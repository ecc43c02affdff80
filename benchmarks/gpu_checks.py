"""Checks of bertpipe's GPU paths that a CPU cannot make (issue 23); gpu_compare.sh runs them.

1. mask: a padded batch's logits with SDPA's 4-D boolean mask (what `fit` and predict give
   BERT, RoBERTa and their kin on a GPU: model.takes_boolean_mask) against the 2-D mask, on
   the device, in fp32 and under bf16 autocast: the largest difference of any logit.
2. syncs: the synchronising calls CUDA's sync debug mode counts in a `fit` of one epoch over
   padded batches, at 4 steps and at 8. The step reads nothing back, so the two counts must be
   equal (the epoch's end reads the loss once, whatever its length).
3. rerun: two fits with the same seed, their weights compared: equal to the bit on the CPU; on
   a GPU some kernels are not deterministic, and this says by how much they differ.

Texts are medical abstracts cut to 5 to 60 words, so that nearly every batch pads.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gpu_checks.py --device cpu --json /tmp/checks.json
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
import torch
from abstracts import ABSTRACTS_FILE, DATA_DIR
from contestants import DEVICES, resolve_device

from bertpipe.batching import pad_batch
from bertpipe.errors import run_main
from bertpipe.inference import autocast
from bertpipe.model import load_classifier, load_tokenizer, pad_token_id, takes_boolean_mask
from bertpipe.params import Params
from bertpipe.tokens import TokenizedSplit, tokenize_split
from bertpipe.training import fit, make_accelerator


def short_texts(data_dir: Path, rows: int) -> tuple[list[str], list[str]]:
    """`rows` abstracts, each cut to between 5 and 60 words, and their labels."""
    frame = pd.read_csv(data_dir / ABSTRACTS_FILE).head(rows)
    texts = [
        " ".join(text.split()[: 5 + (7 * row) % 56])
        for row, text in enumerate(frame["medical_abstract"])
    ]
    return texts, frame["condition_label"].astype(str).tolist()


def split_of(
    texts: list[str], labels: list[str], tokenizer: Any, names: list[str]
) -> TokenizedSplit:
    return tokenize_split(texts, labels, np.arange(len(texts)), tokenizer, 96, names, "multiclass")


def mask_difference(model: Any, split: TokenizedSplit, pad_id: int, device: torch.device) -> dict:
    """The largest logit difference between the 4-D boolean mask and the 2-D one."""
    rows = list(range(min(16, len(split))))
    plain = pad_batch(split, rows, pad_id)
    boolean = pad_batch(split, rows, pad_id, boolean_mask=True)
    padded = int((plain["attention_mask"] == 0).sum())
    model = model.to(device).eval()
    found: dict[str, Any] = {"padded_tokens": padded}
    for precision in ("no", "bf16"):
        with torch.no_grad(), autocast(device, precision):
            expected = model(**{k: v.to(device) for k, v in plain.items()}).logits.float()
            actual = model(**{k: v.to(device) for k, v in boolean.items()}).logits.float()
        found[f"max_abs_difference_{precision}"] = float((actual - expected).abs().max())
    return found


def count_syncs(fit_once: Any, device: torch.device) -> dict[str, int] | None:
    """Sync warnings in one epoch of 4 steps and of 8; None off CUDA."""
    if device.type != "cuda":
        return None
    counts = {}
    for batch_size, steps in ((16, 4), (8, 8)):
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit_once(batch_size)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        counts[f"{steps}_steps"] = sum("synchroniz" in str(w.message) for w in caught)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=DEVICES, default=None, help="default: cuda if any")
    parser.add_argument("--model", default="minilm", help="minilm, or a folder holding it")
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="medical_abstracts.csv's")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    device = resolve_device(args.device)

    texts, labels = short_texts(args.data, 96)
    names = sorted(set(labels))
    tokenizer = load_tokenizer(args.model)
    pad_id = pad_token_id(tokenizer)
    train = split_of(texts[:64], labels[:64], tokenizer, names)
    val = split_of(texts[64:], labels[64:], tokenizer, names)

    def new_model() -> Any:
        torch.manual_seed(0)
        return load_classifier(args.model, len(names), "single_label_classification", names)

    def fit_once(batch_size: int) -> Any:
        params = Params(task="multiclass", epochs=1, batch_size=batch_size, seed=0)
        model = new_model()
        fit(
            model,
            train,
            val,
            params,
            pad_id,
            progress=False,
            accelerator=make_accelerator(params.train.precision, device.type),
        )
        return model

    model = new_model()
    results: dict[str, Any] = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "takes_boolean_mask_here": takes_boolean_mask(model, device.type),
        "mask": mask_difference(model, train, pad_id, device),
        "syncs": count_syncs(fit_once, device),
    }
    first, second = fit_once(16), fit_once(16)
    differences = [
        float((a.float() - b.float()).abs().max())
        for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    ]
    results["rerun"] = {
        "bitwise_equal": max(differences) == 0.0,
        "max_abs_weight_difference": max(differences),
    }
    for name in ("mask", "syncs", "rerun"):
        print(f"gpu_checks {name}: {results[name]}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    run_main(main)
