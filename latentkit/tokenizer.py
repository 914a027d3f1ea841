"""A word-level tokenizer for the shapes world's captions, built offline, as a transformers tokenizer.

Real Stable Diffusion downloads CLIP's BPE tokenizer from a model hub; we cannot, and do not need to: the
world's captions use a few dozen words. One token per word also makes the text space easy to read
(notebook ``03_diffusion_latent_spaces`` perturbs the embedding of the word ``star``).

Unknown words: every word outside the vocabulary becomes the ``<unk>`` token; :func:`unknown_words` tells
which words were not understood, and :func:`latentkit.run.check_call` warns about them before a
generation (and refuses a prompt of which no word is known: it would draw an empty caption's image).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

BOS, EOS, UNK, PAD = "<|startoftext|>", "<|endoftext|>", "<unk>", "<pad>"
#: Token ids 0..3. The end-of-sentence id is deliberately not 2: transformers' CLIP text model treats
#: eos_token_id == 2 as a legacy config and would pool the wrong position.
SPECIAL_TOKENS = (PAD, BOS, UNK, EOS)
_WORD = re.compile(r"\w+|[^\w\s]")


def build_tokenizer(words: Iterable[str], max_length: int = 20):
    """A ``PreTrainedTokenizerFast`` with one token per word, CLIP's special tokens and fixed length.

    Args:
        words: the vocabulary (lower-case words; duplicates are ignored).
        max_length: ``model_max_length``; the pipelines pad every prompt to it.

    Returns:
        A tokenizer that encodes ``"a red star"`` as ``[<|startoftext|>, a, red, star, <|endoftext|>]``,
        saves with ``save_pretrained`` and loads with ``PreTrainedTokenizerFast.from_pretrained``.
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in sorted(set(words)):
        if not _WORD.fullmatch(word):
            raise ValueError(f"vocabulary entries must be single words, got {word!r}")
        vocab.setdefault(word.lower(), len(vocab))
    core = Tokenizer(WordLevel(vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        model_max_length=max_length,
        padding_side="right",
    )


def world_tokenizer(max_length: int = 20):
    """The tokenizer of the shapes world's caption grammar (see :func:`latentkit.world.vocabulary`)."""
    from latentkit.world import vocabulary

    return build_tokenizer(vocabulary(), max_length=max_length)


def words_of(prompt: str) -> list[str]:
    """The words (and punctuation marks) of ``prompt`` as the tokenizer splits them, lower-cased."""
    return _WORD.findall(prompt.lower())


def unknown_words(tokenizer, prompt: str) -> list[str]:
    """Words of ``prompt`` that ``tokenizer`` maps to ``<unk>`` (empty when it understands them all)."""
    vocab = tokenizer.get_vocab()
    return [w for w in words_of(prompt) if w not in vocab]
