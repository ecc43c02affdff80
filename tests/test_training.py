"""The training loop on the tiny BERT: every option does what it says."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DataLoaderConfiguration, DistributedType
from conftest import TINY_SIZES
from helpers import set_dropout
from pydantic import ValidationError
from safetensors.torch import load_file
from transformers import AutoTokenizer

from bertpipe import training
from bertpipe.batching import Collator
from bertpipe.checkpoint import step_folders
from bertpipe.errors import UserError
from bertpipe.inference import default_device
from bertpipe.labels import sorted_label_names
from bertpipe.metric_names import METRICS_BY_TASK
from bertpipe.model import load_classifier
from bertpipe.params import AUTO_BATCH_SIZE, Params
from bertpipe.tokens import TokenizedSplit, tokenize_split
from bertpipe.training import balanced_weights, fit, task_loss


@pytest.fixture(scope="module")
def splits(tiny_bert: Path, sample_frame: pd.DataFrame) -> tuple[TokenizedSplit, TokenizedSplit]:
    return make_splits(tiny_bert, sample_frame)


def make_splits(
    tiny_bert: Path, sample_frame: pd.DataFrame
) -> tuple[TokenizedSplit, TokenizedSplit]:
    """64 train and 32 val examples of the bundled sample, tokenized for the tiny BERT."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    frame = sample_frame.dropna(subset=["text"]).head(96)
    names = sorted_label_names(frame["label"], "multiclass")

    def make(part: pd.DataFrame) -> TokenizedSplit:
        return tokenize_split(
            part["text"].tolist(),
            part["label"].tolist(),
            np.arange(len(part)),
            tokenizer,
            48,
            names,
            "multiclass",
        )

    return make(frame.iloc[:64]), make(frame.iloc[64:])


def new_model(tiny_bert: Path, dropout: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(0)
    model = load_classifier(
        str(tiny_bert), 5, "single_label_classification", [str(i) for i in range(5)]
    )
    set_dropout(model, dropout)
    return model


def test_attention_dropout_overrides_only_the_attention(tiny_bert: Path) -> None:
    names = ["a", "b"]
    kept = load_classifier(str(tiny_bert), 2, "single_label_classification", names)
    assert kept.config.attention_probs_dropout_prob == 0.1
    model = load_classifier(
        str(tiny_bert), 2, "single_label_classification", names, attention_dropout=0.0
    )
    assert model.config.attention_probs_dropout_prob == 0.0
    assert model.config.hidden_dropout_prob == kept.config.hidden_dropout_prob == 0.1
    assert all(layer.attention.self.dropout.p == 0.0 for layer in model.bert.encoder.layer)


def config(**overrides: object) -> Params:
    """Params for a quick run; an override names a top-level key or a key of `train`."""
    base: dict[str, object] = dict(
        task="multiclass",
        lr=1e-3,
        epochs=1,
        batch_size=16,
        seed=0,
        precision="fp32",
        patience=None,
        warmup_ratio=0.0,
    )
    settings = {**base, **overrides}
    top = {key: value for key, value in settings.items() if key in Params.model_fields}
    train = {key: value for key, value in settings.items() if key not in top}
    return Params.model_validate({**top, "train": train})


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def test_training_lowers_the_loss(tiny_bert: Path, splits: tuple) -> None:
    train, val = splits
    model = new_model(tiny_bert)
    result = fit(model, train, val, config(epochs=4, lr=3e-3), pad_token_id=0, progress=False)
    losses = [record["train_loss"] for record in result.history]
    assert len(losses) == 4
    assert losses[-1] < losses[0]
    assert result.stats["train_samples"] == 4 * len(train)
    assert result.stats["train_samples_per_second"] > 0
    assert 0 <= result.stats["padding_fraction"] < 1


def test_gradient_accumulation_matches_one_big_batch(tiny_bert: Path, splits: tuple) -> None:
    train, val = splits
    # one optimizer step either way: 4 micro-batches of 16, or one batch of 64
    accumulated = new_model(tiny_bert)
    fit(
        accumulated,
        train,
        val,
        config(batch_size=16, grad_accum_steps=4, group_size=4),
        0,
        progress=False,
    )
    single = new_model(tiny_bert)
    fit(single, train, val, config(batch_size=64, grad_accum_steps=1), 0, progress=False)
    untouched = new_model(tiny_bert)

    changed = 0
    for name, tensor in weights(single).items():
        torch.testing.assert_close(weights(accumulated)[name], tensor, atol=2e-6, rtol=1e-4)
        changed += not torch.equal(tensor, weights(untouched)[name])
    assert changed > 10, "the optimizer step did not change the weights"


def test_early_stopping_restores_the_best_epoch(
    tiny_bert: Path, splits: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, val = splits
    planted = iter([0.5, 0.9, 0.7, 0.6, 0.95])  # best at epoch 2, then two worse epochs: stop

    def fake_metrics(*_args: object, **_kwargs: object) -> dict[str, float]:
        return {
            "accuracy": 0.0,
            "f1_macro": next(planted),
            "f1_weighted": 0.0,
            "precision_macro": 0.0,
            "recall_macro": 0.0,
        }

    monkeypatch.setattr(training, "compute_metrics", fake_metrics)
    snapshots: list[dict[str, torch.Tensor]] = []
    model = new_model(tiny_bert)
    result = fit(
        model,
        train,
        val,
        config(epochs=5, patience=2),
        0,
        on_epoch_end=lambda record: snapshots.append(weights(model)),
        progress=False,
    )
    assert result.best_epoch == 2 and result.stopped_early
    assert len(result.history) == 4
    final = weights(model)
    for name, tensor in snapshots[1].items():
        assert torch.equal(final[name], tensor), name
    assert any(not torch.equal(final[n], t) for n, t in snapshots[3].items())


def test_balanced_class_weights() -> None:
    labels = np.array([0, 0, 0, 1])
    weight = balanced_weights(labels, "multiclass", 2)
    torch.testing.assert_close(weight, torch.tensor([4 / 6, 4 / 2]))
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([0, 1])
    per_example = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    expected = (per_example * weight[targets]).sum() / weight[targets].sum()
    torch.testing.assert_close(task_loss(logits, targets, "multiclass", weight), expected)
    assert not torch.isclose(task_loss(logits, targets, "multiclass"), expected)


def test_pos_weight_balances_each_label_and_spares_one_sided_labels() -> None:
    # labels: 1 of 4 rows, 3 of 4, every row, no row
    labels = np.array([[1, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 1, 0]], dtype=np.float32)
    weight = balanced_weights(labels, "multilabel", 4)
    # negatives / positives; a label on every row (or none) has nothing to balance: weight 1,
    # not 0 / 4 = 0, which would zero its loss so that it never trains
    torch.testing.assert_close(weight, torch.tensor([3.0, 1 / 3, 1.0, 1.0]))
    # the label on every row still has a loss to learn from
    on_every_row = torch.from_numpy(labels[:, 2:3])
    assert task_loss(torch.zeros(4, 1), on_every_row, "multilabel", weight[2:3]) > 0.5


def test_class_weights_change_training(tiny_bert: Path, splits: tuple) -> None:
    train, val = splits
    plain, weighted = new_model(tiny_bert), new_model(tiny_bert)
    fit(plain, train, val, config(), 0, progress=False)
    fit(weighted, train, val, config(class_weights="balanced"), 0, progress=False)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(weights(plain).values(), weights(weighted).values(), strict=True)
    )


def test_same_seed_same_weights(tiny_bert: Path, splits: tuple) -> None:
    train, val = splits
    first, second = new_model(tiny_bert, dropout=0.1), new_model(tiny_bert, dropout=0.1)
    settings = []

    def determinism(record: dict[str, float]) -> None:
        settings.append(
            (
                torch.are_deterministic_algorithms_enabled(),
                torch.utils.deterministic.fill_uninitialized_memory,
            )
        )

    assert not torch.are_deterministic_algorithms_enabled()
    fit(first, train, val, config(epochs=2), 0, progress=False, on_epoch_end=determinism)
    # deterministic kernels inside the fit, without NaN-filling new memory; as before, after it
    assert settings == [(True, False), (True, False)]
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory
    fit(second, train, val, config(epochs=2), 0, progress=False)
    for (name, a), b in zip(weights(first).items(), weights(second).values(), strict=True):
        assert torch.equal(a, b), name


def test_resume_after_a_crash_matches_an_uninterrupted_run(
    tiny_bert: Path, splits: tuple, tmp_path: Path
) -> None:
    train, val = splits
    settings = config(epochs=3, class_weights="balanced")
    reference = new_model(tiny_bert, dropout=0.1)
    expected = fit(reference, train, val, settings, 0, progress=False)

    class Crash(Exception):
        pass

    def crash_in_epoch_3(record: dict) -> None:
        if record["epoch"] == 3:
            raise Crash  # after epoch 2's checkpoint, before epoch 3's

    with pytest.raises(Crash):
        fit(
            new_model(tiny_bert, dropout=0.1),
            train,
            val,
            settings,
            0,
            checkpoint_dir=tmp_path,
            fingerprint="f",
            on_epoch_end=crash_in_epoch_3,
            progress=False,
        )
    resumed_model = new_model(tiny_bert, dropout=0.1)
    resumed = fit(
        resumed_model,
        train,
        val,
        settings,
        0,
        checkpoint_dir=tmp_path,
        fingerprint="f",
        progress=False,
    )
    assert resumed.resumed_from_epoch == 2
    assert resumed.history == expected.history
    for (name, a), b in zip(
        weights(reference).items(), weights(resumed_model).values(), strict=True
    ):
        assert torch.equal(a, b), name
    # a finished run leaves only the marker, and a later run starts from scratch
    assert step_folders(tmp_path) == []
    again = fit(
        new_model(tiny_bert, dropout=0.1),
        train,
        val,
        settings,
        0,
        checkpoint_dir=tmp_path,
        fingerprint="f",
        progress=False,
    )
    assert again.resumed_from_epoch is None


def test_a_checkpoint_of_other_params_is_ignored(
    tiny_bert: Path, splits: tuple, tmp_path: Path
) -> None:
    train, val = splits

    def stop(record: dict) -> None:
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(
            new_model(tiny_bert),
            train,
            val,
            config(epochs=2),
            0,
            checkpoint_dir=tmp_path,
            fingerprint="a",
            on_epoch_end=stop,
            progress=False,
        )
    result = fit(
        new_model(tiny_bert),
        train,
        val,
        config(epochs=2),
        0,
        checkpoint_dir=tmp_path,
        fingerprint="b",
        progress=False,
    )
    assert result.resumed_from_epoch is None


def test_unknown_early_stopping_metric_is_refused(tiny_bert: Path, splits: tuple) -> None:
    from bertpipe.errors import UserError

    train, val = splits
    with pytest.raises(ValidationError, match="early_stopping_metric"):
        config(early_stopping_metric="r2")  # at load
    # and by fit, for params built without validation
    params = config()
    unchecked = params.model_copy(
        update={"train": params.train.model_copy(update={"early_stopping_metric": "r2"})}
    )
    with pytest.raises(UserError, match="early_stopping_metric: 'r2' is not a metric"):
        fit(new_model(tiny_bert), train, val, unchecked, 0, progress=False)


def test_batches_are_copied_non_blocking_only_off_the_cpu() -> None:
    # pinned memory + non_blocking overlaps the host-to-device copy with compute on CUDA;
    # on the CPU there is no copy to overlap
    on_cpu = not torch.cuda.is_available()
    non_blocking = training.make_accelerator("fp32").dataloader_config.non_blocking
    assert non_blocking is not on_cpu
    # and so are the batches of an epoch resumed in its middle (Accelerate's skip_first_batches
    # makes a loader of its own)
    accelerator = Accelerator(dataloader_config=DataLoaderConfiguration(non_blocking=True))
    loader = accelerator.prepare(torch.utils.data.DataLoader(list(range(10)), batch_size=2))
    assert loader._non_blocking
    skipped = training.skip_batches(accelerator, loader, 2)
    assert skipped._non_blocking and [int(b[0]) for b in skipped] == [4, 6, 8]


def test_short_batches_use_the_math_attention_kernel_on_cpu() -> None:
    def backends_inside(device: str, seq_len: int) -> set[str]:
        enabled = set()
        with training.attention_kernel(torch.device(device), seq_len):
            if torch.backends.cuda.math_sdp_enabled():
                enabled.add("math")
            if torch.backends.cuda.flash_sdp_enabled():
                enabled.add("flash")
        return enabled

    assert backends_inside("cpu", 128) == {"math"}
    assert backends_inside("cpu", training.CPU_MATH_ATTENTION_MAX_LENGTH + 8) == {"math", "flash"}
    assert backends_inside("cuda", 64) == {"math", "flash"}  # PyTorch's own choice on GPUs


def test_train_step_steps_only_when_the_accumulation_completes(
    tiny_bert: Path, splits: tuple
) -> None:
    train, _ = splits
    params = config(grad_accum_steps=2)
    model = new_model(tiny_bert)
    accelerator = training.make_accelerator("fp32")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)
    batch = Collator(train, 0)(list(range(8)))
    before = weights(model)

    loss = training.train_step(model, batch, optimizer, scheduler, accelerator, params, None, False)
    assert loss.ndim == 0 and loss.item() > 0
    assert all(torch.equal(before[name], tensor) for name, tensor in weights(model).items())
    assert any(parameter.grad is not None for parameter in model.parameters())
    assert set(batch) == {"input_ids", "attention_mask", "labels"}  # the batch is not consumed

    training.train_step(model, batch, optimizer, scheduler, accelerator, params, None, True)
    assert any(not torch.equal(before[name], tensor) for name, tensor in weights(model).items())
    assert all(parameter.grad is None for parameter in model.parameters())
    assert scheduler.last_epoch == 1


def test_validate_gives_the_val_loss_and_every_metric_of_the_task(
    tiny_bert: Path, splits: tuple
) -> None:
    _, val = splits
    record = training.validate(new_model(tiny_bert), val, config(), 0, "no")
    assert set(record) == {"val_loss", *(f"val_{name}" for name in METRICS_BY_TASK["multiclass"])}
    assert record["val_loss"] > 0
    assert 0 <= record["val_accuracy"] <= 1


def test_val_loss_is_weighted_by_the_class_weights_like_train_loss(
    tiny_bert: Path, splits: tuple
) -> None:
    train, val = splits
    settings = config(class_weights="balanced")
    model = new_model(tiny_bert)
    result = fit(model, train, val, settings, 0, progress=False)
    weight = balanced_weights(train.labels, "multiclass", 5)
    weighted = training.validate(model, val, settings, 0, "no", weight)
    assert result.history[0]["val_loss"] == weighted["val_loss"]
    assert weighted["val_loss"] != training.validate(model, val, settings, 0, "no")["val_loss"]


def test_a_step_reads_nothing_back_and_the_train_loss_keeps_its_bits(
    tiny_bert: Path, splits: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a GPU, reading a value (loss.item(), int(mask.sum())) makes the host wait for the
    # step. Count the reads inside the epochs: twice the steps must not add any. Not counted:
    # the model's own, transformers' `padding_mask.all()` in each eager forward pass
    # (masking_utils; torch.compile skips it).
    train, val = splits
    reads = 0
    counting = False

    def counted(real: Any) -> Any:
        def read(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            nonlocal reads
            caller = sys._getframe(1).f_code.co_filename
            reads += counting and not caller.endswith("masking_utils.py")
            return real(self, *args, **kwargs)

        return read

    for name in ("item", "tolist", "__float__", "__int__", "__index__", "__bool__"):
        monkeypatch.setattr(torch.Tensor, name, counted(getattr(torch.Tensor, name)))
    real_epoch, real_step = training._train_epoch, training.train_step
    step_losses: list[torch.Tensor] = []

    def counted_epoch(*args: Any, **kwargs: Any) -> float:
        nonlocal counting
        counting = True
        try:
            return real_epoch(*args, **kwargs)
        finally:
            counting = False

    def recording_step(*args: Any, **kwargs: Any) -> torch.Tensor:
        loss = real_step(*args, **kwargs)
        step_losses.append(loss.detach().clone())  # read after the epoch, not counted
        return loss

    monkeypatch.setattr(training, "_train_epoch", counted_epoch)
    monkeypatch.setattr(training, "train_step", recording_step)
    reads_by_steps, train_loss = {}, 0.0
    for batch_size in (16, 8):  # 4 steps, then 8
        reads, step_losses = 0, []
        result = fit(new_model(tiny_bert), train, val, config(batch_size=batch_size), 0, False)
        reads_by_steps[len(step_losses)] = reads
        train_loss = result.history[0]["train_loss"]
    assert reads_by_steps[8] == reads_by_steps[4], reads_by_steps

    # The running loss is summed on the device in float64, like the Python float that summed
    # each step's `loss.item()` before: the epoch's train_loss must be that one, to the bit.
    host_sum = 0.0
    for loss in step_losses:
        host_sum += loss.item()
    # `_mean_over_processes` reduces it in float64 too, so the mean is the host's
    assert train_loss == round(host_sum / len(step_losses), 6)


def test_each_fit_gets_the_precision_it_asks_for(tiny_bert: Path, splits: tuple) -> None:
    # Accelerate keeps its state per process; a second fit must not inherit the first one's
    train, val = splits
    asked = ["fp32", "bf16", "fp32"]
    results = [
        # batch_size auto: resolved for the device the fit runs on
        fit(new_model(tiny_bert), train, val, config(precision=p, batch_size="auto"), 0, False)
        for p in asked
    ]
    assert [r.mixed_precision for r in results] == ["no", "bf16", "no"]
    for result in results:
        assert result.stats["device"] == str(default_device())
        assert result.stats["device_name"]  # the CPU's model, or the GPU's
        assert result.stats["batch_size"] == AUTO_BATCH_SIZE[default_device().type]


def test_a_cpu_pinned_accelerator_does_not_leak_into_the_next_fit() -> None:
    # Trainer(use_cpu=True) and Accelerator(cpu=True) leave Accelerate's PartialState on the
    # CPU; the next fit ran there beside an idle GPU. Here the leftover state is put on a device
    # that is not the one asked for (this machine may have no GPU to leave it off).
    Accelerator(cpu=True)
    PartialState._shared_state["device"] = torch.device("meta")
    accelerator = training.make_accelerator("fp32")
    assert accelerator.device.type == default_device().type
    assert training.make_accelerator("auto", device="cpu").device.type == "cpu"


def test_a_launchers_process_group_is_kept() -> None:
    # several processes share a PartialState that holds the process group: it must survive
    training.make_accelerator("fp32", device="cpu")
    state = PartialState._shared_state
    state["distributed_type"] = DistributedType.MULTI_CPU  # as torchrun's would be
    try:
        accelerator = training.make_accelerator("bf16", device="cpu")
        assert PartialState._shared_state is state
        assert state["distributed_type"] == DistributedType.MULTI_CPU
        assert accelerator.mixed_precision == "bf16"
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_is_one_clear_error() -> None:
    from bertpipe.errors import UserError

    with pytest.raises(UserError, match="device cuda: this machine has no CUDA GPU"):
        training.make_accelerator("auto", device="cuda")


def test_compile_trains_and_saves_plain_weights(
    tiny_bert: Path, splits: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the aot_eager backend goes through dynamo and AOT autograd, as inductor does, without
    # inductor's C++ build (minutes on 2 cores); inductor itself is measured in benchmarks/
    compiled: list[torch.nn.Module] = []
    real_compile = torch.compile

    def light_compile(model: torch.nn.Module, **kwargs: Any) -> Any:
        compiled.append(model)
        return real_compile(model, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", light_compile)
    train, val = splits
    model = new_model(tiny_bert)
    before = weights(model)
    result = fit(model, train, val, config(compile=True), 0, progress=False)
    assert compiled == [model]
    assert math.isfinite(result.history[0]["train_loss"])
    assert any(not torch.equal(before[name], t) for name, t in weights(model).items())
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert not [key for key in saved if "_orig_mod" in key]
    reloaded = load_classifier(
        str(tmp_path), 5, "single_label_classification", [str(i) for i in range(5)]
    )
    for name, tensor in weights(model).items():
        assert torch.equal(weights(reloaded)[name], tensor), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_fit_runs_there_in_bf16_and_batches_are_pinned(
    tiny_bert: Path, splits: tuple
) -> None:
    train, val = splits
    Accelerator(cpu=True)  # a CPU-pinned run before this one, as Trainer(use_cpu=True) leaves
    accelerator = training.make_accelerator("auto")
    assert accelerator.device.type == "cuda"
    assert accelerator.mixed_precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    loader, _ = training._train_loader(train, config(), 0, accelerator.device)
    prepared = accelerator.prepare(loader)
    assert prepared.pin_memory and prepared._non_blocking
    batch = next(iter(prepared))
    assert batch["input_ids"].device.type == "cuda"
    result = fit(new_model(tiny_bert), train, val, config(precision="auto"), 0, progress=False)
    assert result.stats["device"].startswith("cuda")
    assert result.stats["device_name"] == torch.cuda.get_device_name(0)
    assert result.stats["batch_size"] == 16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_steps_of_an_epoch_do_not_synchronise(tiny_bert: Path, splits: tuple) -> None:
    # CUDA's own count: with sync debug mode on, each synchronising call warns; twice the
    # steps must not add any
    import warnings

    train, val = splits

    def sync_warnings(batch_size: int) -> int:
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit(new_model(tiny_bert), train, val, config(batch_size=batch_size), 0, False)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    few, many = sync_warnings(16), sync_warnings(8)  # 4 steps an epoch, then 8
    # none per step: padded batches carry SDPA's boolean mask (pad_batch), which transformers
    # passes on without reading it back (`padding_mask.all()` in masking_utils)
    assert many == few, (few, many)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_compile_with_cuda_graphs_trains(tiny_bert: Path, splits: tuple) -> None:
    train, val = splits
    eager_model, compiled_model = new_model(tiny_bert), new_model(tiny_bert)
    eager = fit(eager_model, train, val, config(epochs=2, precision="auto"), 0, progress=False)
    compiled = fit(
        compiled_model, train, val, config(epochs=2, precision="auto", compile=True), 0, False
    )
    for mine, theirs in zip(compiled.history, eager.history, strict=True):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=0.05)
    assert not [key for key in compiled_model.state_dict() if "_orig_mod" in key]


@pytest.mark.parametrize(
    ("precision", "cpu_bf16", "gpu_bf16", "on_cpu", "on_cuda"),
    [
        ("auto", True, True, "bf16", "bf16"),
        ("auto", False, False, "no", "fp16"),  # a GPU before Ampere: fp16, not emulated bf16
        ("fp32", True, True, "no", "no"),
        ("bf16", False, False, "bf16", "bf16"),
        ("fp16", True, True, None, "fp16"),  # None: refused
    ],
)
def test_how_precision_maps_on_each_device(
    monkeypatch: pytest.MonkeyPatch,
    precision: str,
    cpu_bf16: bool,
    gpu_bf16: bool,
    on_cpu: str | None,
    on_cuda: str,
) -> None:
    # the README's table; the CUDA column is checked without a GPU, on the device's type alone
    from bertpipe import inference
    from bertpipe.errors import UserError

    def gpu_has_bf16(including_emulation: bool = True) -> bool:
        return gpu_bf16 or including_emulation  # torch emulates bf16 on older GPUs

    monkeypatch.setattr(inference, "cpu_has_bf16", lambda: cpu_bf16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", gpu_has_bf16)
    assert inference.resolve_precision(precision, torch.device("cuda")) == on_cuda
    if on_cpu is None:
        with pytest.raises(UserError, match="fp16 needs a CUDA GPU"):
            inference.resolve_precision(precision, torch.device("cpu"))
    else:
        assert inference.resolve_precision(precision, torch.device("cpu")) == on_cpu
    # a model trained so predicts on either; one trained in fp16 on a GPU, on a CPU as auto
    cpu_auto = "bf16" if cpu_bf16 else "no"
    predicts_on_cpu = cpu_auto if on_cpu is None else on_cpu
    assert inference.inference_precision(precision, torch.device("cpu")) == predicts_on_cpu
    assert inference.inference_precision(precision, torch.device("cuda")) == on_cuda


@pytest.mark.parametrize(
    ("device", "processes", "grad_accum_steps", "compile", "expected"),
    [
        ("cuda", 1, 1, True, True),
        ("cuda", 1, 1, False, False),
        ("cpu", 1, 1, True, False),
        ("cuda", 2, 1, True, False),  # DDP's hooks run between graphs
        ("cuda", 1, 4, True, False),  # accumulated gradients outlive a replay
    ],
)
def test_cuda_graphs_only_on_one_gpu_without_accumulation(
    device: str, processes: int, grad_accum_steps: int, compile: bool, expected: bool
) -> None:
    from types import SimpleNamespace

    accelerator = SimpleNamespace(device=torch.device(device), num_processes=processes)
    params = config(compile=compile, grad_accum_steps=grad_accum_steps)
    assert training.uses_cuda_graphs(params, accelerator) is expected  # type: ignore[arg-type]


def test_without_a_mask_of_ones_the_logits_are_the_same_to_the_bit(
    tiny_bert: Path, splits: tuple
) -> None:
    # the training loader and predict drop a mask that pads nothing (pad_batch): the model
    # must give exactly what it gives with the mask
    train, _ = splits
    model = new_model(tiny_bert).eval()
    rows = [i for i in range(len(train)) if train.lengths[i] == train.lengths.max()][:4]
    with_mask = Collator(train, 0)(rows)
    without = Collator(train, 0, drop_full_mask=True)(rows)
    assert "attention_mask" in with_mask and "attention_mask" not in without
    assert int(with_mask["attention_mask"].min()) == 1
    with torch.no_grad():
        expected = model(**{k: v for k, v in with_mask.items() if k != "labels"}).logits
        actual = model(**{k: v for k, v in without.items() if k != "labels"}).logits
    assert torch.equal(actual, expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_evaluation_runs_on_the_device_asked_for(tiny_bert: Path, splits: tuple) -> None:
    # a benchmark pins every contestant to one device, the CPU included
    from bertpipe.evaluation import evaluate_model

    _, val = splits
    model = new_model(tiny_bert)
    on_cpu = evaluate_model(model, val, "multiclass", 0, precision="fp32", device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    on_gpu = evaluate_model(model, val, "multiclass", 0, precision="fp32", device="cuda")
    assert next(model.parameters()).device.type == "cuda"
    assert on_gpu.metrics["accuracy"] == pytest.approx(on_cpu.metrics["accuracy"], abs=0.05)


def _regression_splits(
    texts: list[str], targets: list[float], tokenizer: Any, train_rows: int
) -> tuple[TokenizedSplit, TokenizedSplit]:
    """The first `train_rows` texts as the training split, the rest as validation, at 48 tokens."""
    train, val = (
        tokenize_split(
            texts[rows], targets[rows], np.arange(len(texts))[rows], tokenizer, 48, [], "regression"
        )
        for rows in (slice(0, train_rows), slice(train_rows, len(texts)))
    )
    return train, val


def test_regression_learns_the_same_in_any_units_and_saves_them_in_the_weights(
    tiny_bert: Path, sample_frame: pd.DataFrame, tmp_path: Path
) -> None:
    # targets around 400,000 (a price, a stay in minutes): the head starts near 0 and AdamW
    # moves a weight by about lr a step, so unstandardised such targets were never reached
    # (r2 about -(mean / std)^2); standardised, training is the same as on 0..4
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    frame = sample_frame.dropna(subset=["text"]).head(96)
    codes = {name: i for i, name in enumerate(sorted(frame["label"].unique()))}

    def run(shift: float, scale: float) -> tuple[torch.nn.Module, Any, TokenizedSplit]:
        targets = [shift + scale * codes[label] for label in frame["label"]]
        train, val = _regression_splits(frame["text"].tolist(), targets, tokenizer, 64)
        torch.manual_seed(0)
        model = load_classifier(str(tiny_bert), 1, "regression", ["target"])
        settings = config(task="regression", epochs=2, lr=3e-3)
        return model, fit(model, train, val, settings, pad_token_id=0, progress=False), val

    small_model, small, small_val = run(0.0, 1.0)
    large_model, large, large_val = run(400_000.0, 50_000.0)
    for one, other in zip(small.history, large.history, strict=True):
        assert one["train_loss"] == pytest.approx(other["train_loss"], rel=1e-3)
        assert one["val_r2"] == pytest.approx(other["val_r2"], abs=1e-3)
    assert large.history[-1]["val_mse"] == pytest.approx(
        50_000**2 * small.history[-1]["val_mse"], rel=1e-3
    )
    # the shift and scale are in the saved weights: a plain load predicts in the targets' units
    assert type(large_model.classifier).__name__ == "Fp32Linear"
    predicted = training.predict_logits(large_model, large_val, 8, 0)[:, 0]
    expected = 400_000 + 50_000 * training.predict_logits(small_model, small_val, 8, 0)[:, 0]
    np.testing.assert_allclose(predicted, expected, rtol=1e-5)
    large_model.save_pretrained(tmp_path)
    reloaded = load_classifier(str(tmp_path), 1, "regression", ["target"])
    np.testing.assert_allclose(training.predict_logits(reloaded, large_val, 8, 0)[:, 0], predicted)


def test_a_model_that_overflows_in_bf16_is_one_line_naming_fp32(
    tiny_bert: Path, splits: tuple
) -> None:
    # DeBERTa v1 fills masked attention scores with float32's minimum, which bf16 cannot hold
    from transformers import DebertaConfig, DebertaForSequenceClassification

    train, val = splits
    vocab_size = AutoTokenizer.from_pretrained(tiny_bert).vocab_size
    torch.manual_seed(0)
    model = DebertaForSequenceClassification(
        DebertaConfig(vocab_size=vocab_size, max_position_embeddings=64, num_labels=5, **TINY_SIZES)
    )
    with pytest.raises(UserError, match=r"overflows under bf16 autocast .*train.precision: fp32$"):
        fit(model, train, val, config(precision="bf16"), pad_token_id=0, progress=False)
    with pytest.raises(UserError, match="overflows under bf16 autocast"):
        training.predict_logits(model, val, 8, 0, "bf16")
    # the same model again, in fp32: the first fit's autocast no longer wraps its forward
    result = fit(model, train, val, config(precision="fp32"), pad_token_id=0, progress=False)
    assert result.mixed_precision == "no"


def test_fitting_a_trained_regression_model_again_keeps_its_predictions(
    tiny_bert: Path, sample_frame: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the output layer of a trained regression model already predicts in the targets' units;
    # standardising it again multiplied its predictions by the targets' std (400,000 -> 1e10)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    frame = sample_frame.dropna(subset=["text"]).head(64)
    targets = [400_000.0 + 50_000.0 * (len(text) % 5) for text in frame["text"]]
    train, val = _regression_splits(frame["text"].tolist(), targets, tokenizer, 48)
    torch.manual_seed(0)
    model = load_classifier(str(tiny_bert), 1, "regression", ["target"])
    fit(model, train, val, config(task="regression", epochs=2, lr=3e-3), 0, progress=False)
    trained = training.predict_logits(model, val, 8, 0)[:, 0]
    assert 300_000 < trained.mean() < 700_000

    def fit_barely(model: torch.nn.Module, **hooks: Any) -> np.ndarray:
        settings = config(task="regression", epochs=1, lr=1e-12)
        fit(model, train, val, settings, 0, progress=False, **hooks)
        return training.predict_logits(model, val, 8, 0)[:, 0]

    # the same object fitted again
    np.testing.assert_allclose(fit_barely(model), trained, rtol=1e-5)
    # the saved model as the base of a new run
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded = load_classifier(str(tmp_path), 1, "regression", ["target"])
    np.testing.assert_allclose(fit_barely(reloaded), trained, rtol=1e-5)

    # a fit that fails leaves the output layer as it was, ready for another fit
    def interrupt(record: dict[str, float]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_barely(reloaded, on_epoch_end=interrupt)
    assert type(reloaded.classifier).__name__ == "Fp32Linear"
    after_failure = training.predict_logits(reloaded, val, 8, 0)[:, 0]
    np.testing.assert_allclose(after_failure, trained, rtol=1e-5)
    np.testing.assert_allclose(fit_barely(reloaded), trained, rtol=1e-5)

    # and so does one that fails before its first step (out of memory in prepare, say)
    def no_memory(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    with monkeypatch.context() as patch:
        patch.setattr(training, "_optimizer", no_memory)
        with pytest.raises(MemoryError):
            fit_barely(reloaded)
    assert type(reloaded.classifier).__name__ == "Fp32Linear"
    np.testing.assert_allclose(fit_barely(reloaded), trained, rtol=1e-5)


def test_running_out_of_memory_is_one_line_naming_what_to_lower(
    tiny_bert: Path, splits: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bertpipe.errors import UserError
    from bertpipe.inference import predict_logits

    train, val = splits

    def out_of_memory(*args: Any, **kwargs: Any) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with monkeypatch.context() as patched:
        patched.setattr(training, "train_step", out_of_memory)
        with pytest.raises(
            UserError, match=r"^cpu \(.*\) ran out of memory training batches of 16"
        ):
            fit(new_model(tiny_bert), train, val, config(), 0, progress=False)

    model = new_model(tiny_bert)

    def cpu_allocation_failed(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8")

    monkeypatch.setattr(model, "forward", cpu_allocation_failed)
    with pytest.raises(UserError, match=r"predicting batches of 4 texts; give a smaller --batch"):
        predict_logits(model, val, 4, 0, batch_size_key="--batch-size")

    def another_error(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(model, "forward", another_error)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):  # not ours to reword
        predict_logits(model, val, 4, 0)
