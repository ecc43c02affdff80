"""Shared fixtures: a tiny BERT built offline, and small samples of the bundled data."""

from __future__ import annotations

import os
import random
import re
import shutil
import string
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings
from prewarmed import Prewarmed

os.environ["HF_HUB_OFFLINE"] = "1"  # no test may wait on a network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist every worker, and every stage or dvc process a test starts, shares the
# machine's cores with the other workers. torch gives each process one thread per core, so N
# workers would run N times as many threads as cores, and OpenMP threads that spin while they wait
# for a core burn it. One share each, read by torch when it starts (this file loads before any
# test imports torch; the subprocesses inherit the variable). Outside xdist, torch's default.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
THREADS_SET_BY_USER = "OMP_NUM_THREADS" in os.environ
if _WORKERS:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

# Property tests: a few dozen examples each under `make test`; HYPOTHESIS_PROFILE=fuzz (`make fuzz`)
# runs thousands and keeps the failing examples in .hypothesis/ to replay them.
_PROPERTY_SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("fast", max_examples=40, database=None, **_PROPERTY_SETTINGS)
settings.register_profile("fuzz", max_examples=3000, **_PROPERTY_SETTINGS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "raw" / "notes.csv"


def _start_order(item: pytest.Item) -> int:
    """0 for a whole-pipeline test (`*_e2e.py`, minutes each), 1 for another slow one, 2 else."""
    if item.get_closest_marker("slow") is None:
        return 2
    return 0 if item.path.name.endswith("_e2e.py") else 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Longest first: under `pytest -n auto` a pipeline run that starts last keeps one worker
    # busy while the others idle; started first, the short tests fill in around them. The sort
    # is stable, so each group keeps its files' order (every worker collects the same order).
    # It works only with `--maxschedchunk 1` (pyproject.toml's addopts): otherwise xdist's load
    # scheduler first hands each worker a contiguous block of an eighth of the tests (on two
    # workers), and the first block, every pipeline run, went to one worker while the other
    # idled for minutes.
    items.sort(key=_start_order)


def build_tiny_bert(folder: Path, words: list[str], max_positions: int = 128) -> Path:
    """A 2-layer, 64-wide BERT and a WordPiece vocabulary of `words`, saved like a hub model.

    64 wide with 4 heads, not narrower: a 32-wide, 2-head model collapsed on the keyword notes
    at some seeds (stuck predicting 2 of 4 classes), in one process or two, with or without
    attention dropout. This one reached the noise ceiling at lr 1e-3 on 32 of 32 seeds
    (BENCHMARKS.md, "Two processes and attention dropout 0").
    """
    from transformers import BertConfig, BertModel, BertTokenizer

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    characters = list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces = [f"##{c}" for c in string.ascii_lowercase + string.digits]
    vocab: dict[str, int] = {}
    for token in [*special, *characters, *pieces, *words]:
        vocab.setdefault(token, len(vocab))
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True)
    tokenizer.model_max_length = max_positions
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=max_positions,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


TINY_SIZES = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)


def _wordpiece_vocab(words: list[str]) -> dict[str, int]:
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    characters = list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces = [f"##{c}" for c in string.ascii_lowercase + string.digits]
    vocab: dict[str, int] = {}
    for token in [*special, *characters, *pieces, *words]:
        vocab.setdefault(token, len(vocab))
    return vocab


def _save(folder: Path, model_class: type, config: object, tokenizer: object) -> Path:
    import torch

    tokenizer.save_pretrained(folder)  # type: ignore[attr-defined]
    torch.manual_seed(0)
    model_class(config).save_pretrained(folder)
    return folder


def build_tiny_distilbert(folder: Path, words: list[str], max_positions: int = 128) -> Path:
    """DistilBERT: WordPiece like BERT, but no token_type_ids and its own config names."""
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizer

    vocab = _wordpiece_vocab(words)
    config = DistilBertConfig(
        vocab_size=len(vocab),
        dim=64,
        n_layers=2,
        n_heads=4,
        hidden_dim=128,
        max_position_embeddings=max_positions,
    )
    tokenizer = DistilBertTokenizer(vocab=vocab, do_lower_case=True)
    return _save(folder, DistilBertModel, config, tokenizer)


def build_tiny_electra(folder: Path, words: list[str], max_positions: int = 128) -> Path:
    """ELECTRA's discriminator: WordPiece, token_type_ids, an embedding size of its own."""
    from transformers import ElectraConfig, ElectraModel, ElectraTokenizer

    vocab = _wordpiece_vocab(words)
    config = ElectraConfig(
        vocab_size=len(vocab),
        embedding_size=32,
        max_position_embeddings=max_positions,
        **TINY_SIZES,
    )
    tokenizer = ElectraTokenizer(vocab=vocab, do_lower_case=True)
    return _save(folder, ElectraModel, config, tokenizer)


def build_tiny_roberta(folder: Path, texts: list[str], max_positions: int = 128) -> Path:
    """RoBERTa with a byte-level BPE tokenizer trained here on `texts`; pad id 1, positions
    offset by 2, as in roberta-base."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=600, min_frequency=2, special_tokens=special)
    folder.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(folder))  # vocab.json, merges.txt
    tokenizer = RobertaTokenizer(
        vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt")
    )
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_positions + 2,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
        **TINY_SIZES,
    )
    return _save(folder, RobertaModel, config, tokenizer)


def build_tiny_deberta_v2(folder: Path, texts: list[str], max_positions: int = 128) -> Path:
    """DeBERTa-v3 style: a SentencePiece-like Unigram tokenizer trained here, relative attention
    and no absolute position embeddings."""
    import json

    from tokenizers import SentencePieceUnigramTokenizer
    from transformers import DebertaV2Config, DebertaV2Model, DebertaV2Tokenizer

    special = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(texts, vocab_size=600, special_tokens=special, unk_token="[UNK]")
    vocab = [tuple(entry) for entry in json.loads(unigram.to_str())["model"]["vocab"]]
    tokenizer = DebertaV2Tokenizer(vocab=vocab, unk_id=special.index("[UNK]"))
    config = DebertaV2Config(
        vocab_size=len(vocab),
        max_position_embeddings=max_positions,
        relative_attention=True,
        position_biased_input=False,
        pos_att_type=["p2c", "c2p"],
        type_vocab_size=0,
        **TINY_SIZES,
    )
    return _save(folder, DebertaV2Model, config, tokenizer)


def build_tiny_mpnet(folder: Path, words: list[str], max_positions: int = 128) -> Path:
    """MPNet as all-mpnet-base-v2 has it: WordPiece with <s> </s> <pad> (pad id 1), positions
    offset by 2 as RoBERTa's, relative attention buckets, no token_type_ids."""
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizer

    special = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]
    vocab = {token: index for index, token in enumerate(special)}
    for token in _wordpiece_vocab(words):  # BERT's [PAD], [CLS] ... are not MPNet's
        if not token.startswith("["):
            vocab.setdefault(token, len(vocab))
    tokenizer = MPNetTokenizer(vocab=vocab, do_lower_case=True)
    config = MPNetConfig(
        vocab_size=len(vocab),
        max_position_embeddings=max_positions + 2,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        relative_attention_num_buckets=32,
        **TINY_SIZES,
    )
    return _save(folder, MPNetModel, config, tokenizer)


def build_tiny_modernbert(folder: Path, texts: list[str], max_positions: int = 128) -> Path:
    """ModernBERT: rotary positions, alternating local and global attention, a byte-level BPE
    tokenizer trained here. The tokenizer is a generic PreTrainedTokenizerFast that lists
    token_type_ids among its inputs, which ModernBERT's forward does not take (bertpipe's
    load_tokenizer drops them)."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import ModernBertConfig, ModernBertModel, PreTrainedTokenizerFast

    special = ["[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=600, min_frequency=2, special_tokens=special)
    bpe.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 0), ("[SEP]", 1)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        unk_token="[UNK]",
        # as a BERT-style tokenizer.json reused for ModernBERT would have it
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    config = ModernBertConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_positions,
        pad_token_id=2,
        cls_token_id=0,
        sep_token_id=1,
        bos_token_id=0,
        eos_token_id=1,
        local_attention=16,
        **TINY_SIZES,
    )
    return _save(folder, ModernBertModel, config, tokenizer)


def frequent_words(texts: list[str], limit: int = 400) -> list[str]:
    counts = Counter(word for text in texts for word in re.findall(r"[a-z]+", text.lower()))
    return [word for word, _ in counts.most_common(limit)]


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = pd.read_csv(SAMPLE)["text"].dropna().tolist()
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), frequent_words(texts))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> dict[str, Path]:
    """A tiny model of each supported family, by config.model_type."""
    texts = pd.read_csv(SAMPLE)["text"].dropna().tolist()
    words = frequent_words(texts)
    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "bert": tiny_bert,
        "roberta": build_tiny_roberta(root / "roberta", texts),
        "distilbert": build_tiny_distilbert(root / "distilbert", words),
        "deberta-v2": build_tiny_deberta_v2(root / "deberta-v2", texts),
        "electra": build_tiny_electra(root / "electra", words),
        "mpnet": build_tiny_mpnet(root / "mpnet", words),
        "modernbert": build_tiny_modernbert(root / "modernbert", texts),
    }


@pytest.fixture(scope="session")
def prewarmed() -> Iterator[Prewarmed]:
    """Commands run in forks of one Python per worker that has imported the libraries."""
    from pipeline_helpers import env

    server = Prewarmed(env())
    yield server
    server.close()


@pytest.fixture(scope="session")
def sample_frame() -> pd.DataFrame:
    """The bundled synthetic notes, read as the clean stage reads them."""
    return pd.read_csv(SAMPLE, dtype=str, keep_default_na=False, na_values=[""])


@pytest.fixture
def small_sample_csv(tmp_path: Path, sample_frame: pd.DataFrame) -> Path:
    """300 rows of the bundled sample, every class present."""
    path = tmp_path / "small.csv"
    sample_frame.groupby("label", group_keys=False).head(60).to_csv(path, index=False)
    return path


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The repository's pipeline files copied into a fresh folder (not yet a git repo)."""
    target = tmp_path / "project"
    target.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy2(REPO / name, target / name)
    for folder in ("stages", "src", "data/raw", "plot_templates"):
        shutil.copytree(
            REPO / folder,
            target / folder,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
        )
    return target


KEYWORDS = {
    "cardiology": ["chest", "ecg", "palpitations"],
    "neurology": ["headache", "seizure", "numbness"],
    "gastroenterology": ["nausea", "vomiting", "diarrhea"],
    "pulmonology": ["cough", "wheezing", "dyspnea"],
}


def keyword_notes(rows: int = 400, seed: int = 0, noise: float = 0.1) -> pd.DataFrame:
    """Notes a tiny BERT can learn in seconds: generic words around one class keyword.

    A share `noise` of notes carries another class's keyword, so accuracy stays below 1.
    """
    rng = random.Random(seed)
    texts = pd.read_csv(SAMPLE)["text"].dropna().tolist()
    keywords = {word for words in KEYWORDS.values() for word in words}
    generic = [w for w in frequent_words(texts, 150) if w not in keywords]
    records = []
    for index in range(rows):
        label = rng.choice(sorted(KEYWORDS))
        source = rng.choice(sorted(KEYWORDS)) if rng.random() < noise else label
        words = [*rng.sample(generic, 8), rng.choice(KEYWORDS[source]), *rng.sample(generic, 4)]
        records.append((index, f"P{index:04d}", " ".join(words), label))
    return pd.DataFrame(records, columns=["note_id", "patient_id", "text", "label"])


@pytest.fixture
def keyword_csv(tmp_path: Path) -> Path:
    path = tmp_path / "keywords.csv"
    keyword_notes().to_csv(path, index=False)
    return path
