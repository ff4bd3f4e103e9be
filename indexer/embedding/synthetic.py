"""Randomly initialised DistilBERT checkpoints, for tests and benchmarks without the Hub.

:func:`make_distilbert` saves a ``DistilBertModel`` with random weights and a WordPiece
tokenizer trained on the given texts, in the layout of a Hugging Face checkpoint, so it
loads through exactly the code path of ``distilbert-base-multilingual-cased``. With
:data:`DISTILMBERT_SHAPE` it has the real model's exact shape, hence its speed; its vectors
mean nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

DISTILMBERT_SHAPE = {"dim": 768, "n_layers": 6, "n_heads": 12, "hidden_dim": 3072, "vocab_size": 119547}
"""The shape of distilbert-base-multilingual-cased (66M transformer + 92M embedding weights)."""
TINY_SHAPE = {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64, "vocab_size": 2000}


def make_distilbert(
    path: str | Path,
    texts: Iterable[str],
    *,
    shape: dict[str, int] | None = None,
    tokenizer_vocab: int = 2000,
    seed: int = 0,
) -> Path:
    """Save a random-weight DistilBERT and a WordPiece tokenizer trained on ``texts`` at ``path``.

    ``shape`` defaults to :data:`TINY_SHAPE`. The model's maximum input is 512 tokens.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    from indexer.embedding.transformer import quiet_libraries

    quiet_libraries()
    shape = dict(shape or TINY_SHAPE)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    vocab = min(tokenizer_vocab, shape["vocab_size"])
    tok.train_from_iterator(list(texts), trainers.WordPieceTrainer(vocab_size=vocab, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = DistilBertTokenizerFast(tokenizer_object=tok, model_max_length=512)
    fast.save_pretrained(path)

    torch.manual_seed(seed)
    config = DistilBertConfig(max_position_embeddings=512, **shape)
    DistilBertModel(config).eval().save_pretrained(path)
    return path
