"""A linear probe on the frozen pre-trained encoder: how much of the medical abstracts' class do
MiniLM's untouched token vectors already carry, and through which pooling?

For each seed the pipeline's own clean and split stages run (the split of long_notes.py's runs at
that seed), the packaged encoder embeds every text once (first `max_length` tokens, bf16 autocast)
and a logistic regression on standardised features, its C chosen on validation macro-F1, is
scored on test. Three poolings of the last layer: `cls_pooler` (the [CLS] vector through the
pre-trained pooler: what BertForSequenceClassification's classifier reads), `cls` (the raw [CLS]
vector) and `mean` (the attention-masked mean of the token vectors: how all-MiniLM-L6-v2 was
trained as a sentence encoder).

    HF_HUB_OFFLINE=1 python benchmarks/frozen_probe.py --workdir /tmp/probe \
        --results benchmarks/results/frozen_probe.jsonl --seed 42 --seed 43 --seed 44
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from harness import append_result, cpu_name, run_stages
from long_notes import workspace_params
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler

POOLINGS = ("cls_pooler", "cls", "mean")
C_GRID = (0.01, 0.1, 1.0)


def split_texts(seed: int, workdir: Path) -> tuple[dict[str, pd.DataFrame], int]:
    """The pipeline's train/val/test tables at this seed, and its max_length."""
    from bertpipe.params import Params

    workspace = workdir / f"seed{seed}"
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True)
    params = workspace_params("right_128", seed, set(Params.model_fields))
    (workspace / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stages(workspace, ("clean", "split"))
    tables = {
        name: pd.read_parquet(workspace / "data" / "split" / f"{name}.parquet")
        for name in ("train", "val", "test")
    }
    return tables, int(params["max_length"])


@torch.inference_mode()
def embed(texts: list[str], max_length: int, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Each pooling's vector for every text, in input order; tokenized and batched as the
    pipeline's own inference does (right truncation, length-sorted batches, bf16 autocast)."""
    from transformers import AutoModel

    from bertpipe.batching import pad_batch, sorted_batches
    from bertpipe.model import load_tokenizer, resolve_model
    from bertpipe.tokens import TokenizedSplit, encode_texts

    tokenizer = load_tokenizer("minilm")
    encoder = AutoModel.from_pretrained(resolve_model("minilm")).eval()
    values, offsets, types = encode_texts(texts, tokenizer, max_length)
    split = TokenizedSplit(values, offsets, types, np.zeros(len(texts)), np.arange(len(texts)))
    width = int(encoder.config.hidden_size)
    pooled = {name: np.zeros((len(texts), width), dtype=np.float32) for name in POOLINGS}
    for indices in sorted_batches(split.lengths, batch_size):
        inputs = pad_batch(split, indices.tolist(), tokenizer.pad_token_id)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = encoder(**inputs)
        hidden = output.last_hidden_state.float()
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        pooled["cls_pooler"][indices] = output.pooler_output.float().numpy()
        pooled["cls"][indices] = hidden[:, 0].numpy()
        pooled["mean"][indices] = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    return pooled


def probe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, Any]:
    """Test macro-F1 of the logistic regression whose C scores best on validation."""
    scaler = StandardScaler().fit(features["train"])
    x = {name: scaler.transform(values) for name, values in features.items()}
    best: dict[str, Any] = {}
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=5000).fit(x["train"], labels["train"])
        val = f1_score(labels["val"], model.predict(x["val"]), average="macro")
        if not best or val > best["val_f1_macro"]:
            test = f1_score(labels["test"], model.predict(x["test"]), average="macro")
            best = {"C": c, "val_f1_macro": round(val, 6), "test_f1_macro": round(test, 6)}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, action="append", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True, help="JSON lines, appended")
    args = parser.parse_args()
    torch.manual_seed(0)
    for seed in args.seed:
        tables, max_length = split_texts(seed, args.workdir)
        texts = pd.concat(tables.values())["text"].astype(str).tolist()
        vectors = embed(texts, max_length)
        bounds = np.cumsum([0] + [len(table) for table in tables.values()])
        labels = {name: table["label"].astype(str).to_numpy() for name, table in tables.items()}
        for pooling in POOLINGS:
            features = {
                name: vectors[pooling][bounds[i] : bounds[i + 1]] for i, name in enumerate(tables)
            }
            result = {
                "seed": seed,
                "pooling": pooling,
                "max_length": max_length,
                **probe(features, labels),
                "cpu": cpu_name(),
            }
            append_result(args.results, result)


if __name__ == "__main__":
    main()
