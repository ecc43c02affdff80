"""Predictions on new text with a trained model folder, cleaned exactly as training cleaned."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertpipe.artifacts import model_folder_lock, read_training_params
from bertpipe.inference import default_device, predict_logits, resolve_precision
from bertpipe.metrics import predict_from_scores, scores_from_logits
from bertpipe.model import load_trained
from bertpipe.text import clean_text
from bertpipe.tokens import TokenizedSplit, encode_texts


@dataclass
class Predictor:
    model: Any
    tokenizer: Any
    task: str
    label_names: list[str]
    max_length: int
    threshold: float
    mask_phi: bool
    text_pair: bool
    precision: str

    @classmethod
    def load(cls, model_dir: str | Path) -> Predictor:
        # under the read lock: a train stage replacing the folder meanwhile cannot mix two models
        with model_folder_lock(model_dir):
            model, tokenizer = load_trained(model_dir)
            trained = read_training_params(model_dir)
        id2label = model.config.id2label
        task = trained.get("task") or (
            "multilabel"
            if model.config.problem_type == "multi_label_classification"
            else "regression"
            if model.config.problem_type == "regression"
            else "multiclass"
        )
        names = [] if task == "regression" else [id2label[i] for i in range(len(id2label))]
        return cls(
            model=model.to(default_device()),
            tokenizer=tokenizer,
            task=task,
            label_names=trained.get("label_names", names),
            max_length=int(trained.get("max_length", tokenizer.model_max_length)),
            threshold=float(trained.get("train", {}).get("threshold", 0.5)),
            mask_phi=bool(trained.get("clean", {}).get("mask_phi", False)),
            text_pair=bool(trained.get("data", {}).get("text_pair", False)),
            precision=trained.get("train", {}).get("precision", "auto"),
        )

    def clean(self, text: str) -> str:
        return clean_text(text, self.mask_phi)

    def predict(
        self, texts: Sequence[Any], batch_size: int = 64, progress: bool = False
    ) -> list[dict[str, Any]]:
        """One result per text, in input order: {"label": ..., "scores": {...}}."""
        cleaned = [
            self.clean(t) if isinstance(t, str) else [self.clean(part) for part in t] for t in texts
        ]
        values, offsets, types = encode_texts(
            cleaned, self.tokenizer, self.max_length, self.text_pair
        )
        split = TokenizedSplit(values, offsets, types, np.zeros(len(texts)), np.arange(len(texts)))
        device = next(self.model.parameters()).device
        logits = predict_logits(
            self.model,
            split,
            batch_size,
            self.tokenizer.pad_token_id or 0,
            resolve_precision(self.precision, device),
            device,
            progress=progress,
        )
        scores = scores_from_logits(logits, self.task)
        predicted = predict_from_scores(scores, self.task, self.threshold)
        return [self._result(scores[i], predicted[i]) for i in range(len(texts))]

    def _result(self, scores: Any, predicted: Any) -> dict[str, Any]:
        if self.task == "regression":
            return {"label": round(float(predicted), 6), "scores": {}}
        named = {name: round(float(s), 6) for name, s in zip(self.label_names, scores, strict=True)}
        if self.task == "multilabel":
            label: Any = [name for name, on in zip(self.label_names, predicted, strict=True) if on]
        else:
            label = self.label_names[int(predicted)]
        return {"label": label, "scores": named}
