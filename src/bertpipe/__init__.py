"""bertpipe: reproducible fine-tuning of BERT-family models on your own text, as a DVC pipeline."""

__version__ = "0.1.0"
