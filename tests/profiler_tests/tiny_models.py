"""Tiny Llama pairs for the engine and acceptance tests, built once per test process.

- a character tokenizer (96 ids: 4 specials + 92 characters), saved as a Hugging Face folder;
- ``target``: 2 layers x 64, trained for a few seconds on real text (the source of the
  standard library's ``textwrap`` module), so its distributions are peaked like a real LM's;
- ``partial``: 1 layer x 32, trained briefly on the same text (a partly trained draft);
- ``random``: 1 layer x 32, untrained (almost nothing accepted);
- ``target`` itself is the perfect draft (everything accepted);
- ``other_vocab``: 1 layer x 32 with a 64-id vocabulary (a mismatched pair).

Every model is saved under one temporary folder with the tokenizer, so the CLI tests can load
them like the zoo.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import shutil
import string
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
ALPHABET = sorted(set(string.ascii_letters + string.digits + " \n()[]{}.,:;=+-*/_'\"#<>!%&|?@$"))
VOCAB = 96
assert len(SPECIALS) + len(ALPHABET) == VOCAB

PROMPTS = [
    "def wrap(text",
    "    return ",
    "import re\n",
    "class TextWrapper:\n    def __init__(self, width=70,",
]


def _tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = {tok: i for i, tok in enumerate(SPECIALS + ALPHABET)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def _model(layers: int, hidden: int, *, seed: int, vocab: int = VOCAB) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


def _train(model: LlamaForCausalLM, stream: torch.Tensor, *, steps: int, seed: int) -> None:
    """A few dozen Adam steps of next-token loss on random windows of ``stream``."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    window, batch = 32, 8
    for _ in range(steps):
        start = torch.randint(0, stream.numel() - window - 1, (batch,), generator=gen)
        x = torch.stack([stream[s : s + window] for s in start.tolist()])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.requires_grad_(False)


@dataclass(frozen=True)
class TinyZoo:
    root: Path
    tokenizer: PreTrainedTokenizerFast
    target: LlamaForCausalLM  # float64 copies: exact comparisons need no near-tie luck
    partial: LlamaForCausalLM
    random: LlamaForCausalLM
    target_dir: Path
    partial_dir: Path
    random_dir: Path
    other_vocab_dir: Path

    def prompt_ids(self) -> list[list[int]]:
        return [self.tokenizer(p)["input_ids"] for p in PROMPTS]


@functools.cache
def tiny_zoo() -> TinyZoo:
    torch.set_num_threads(1)  # tiny models gain nothing from threads; the CPU is shared
    root = Path(tempfile.mkdtemp(prefix="specdec-tiny-zoo-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    tokenizer = _tokenizer()
    text = inspect.getsource(textwrap)
    stream = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])
    target = _model(2, 64, seed=0)
    _train(target, stream, steps=60, seed=0)
    partial = _model(1, 32, seed=1)
    _train(partial, stream, steps=30, seed=1)
    random = _model(1, 32, seed=2)
    other = _model(1, 32, seed=3, vocab=64)
    dirs = {}
    for name, model in [
        ("target", target),
        ("partial", partial),
        ("random", random),
        ("other_vocab", other),
    ]:
        folder = root / name
        model.save_pretrained(folder)
        if name != "other_vocab":
            tokenizer.save_pretrained(folder)
        dirs[name] = folder
    return TinyZoo(
        root=root,
        tokenizer=tokenizer,
        target=target.double(),
        partial=partial.double(),
        random=random.double(),
        target_dir=dirs["target"],
        partial_dir=dirs["partial"],
        random_dir=dirs["random"],
        other_vocab_dir=dirs["other_vocab"],
    )
