"""Training data: the zoo tokenizer, token arrays of the corpus splits, and their windows.

Each corpus file is encoded as ``<|endoftext|>`` followed by its tokens and the files are
concatenated into one uint16 array per split (cached as ``.npy`` under the cache folder by
:func:`tokenize_split`). Training batches are windows of ``seq_len + 1`` tokens at seeded random
starts (:func:`random_windows`, drawn from ``numpy.random.default_rng([seed, step])`` so that a
resumed run draws the same batches); validation uses fixed, evenly spaced windows
(:func:`fixed_windows`).
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from explorer.corpus import CorpusSplit
from explorer.train_config import DEFAULT_CACHE_DIR
from perfmodel.atomic import atomic_write_bytes


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_tokenizer(tokenizer_dir: str | os.PathLike[str]):
    """``AutoTokenizer.from_pretrained(tokenizer_dir)``, with a one-line error when missing."""
    from transformers import AutoTokenizer

    folder = Path(tokenizer_dir)
    if not (folder / "tokenizer.json").is_file():
        raise ValueError(
            f"`tokenizer` must be a folder with tokenizer.json, but got tokenizer={str(folder)!r} "
            f"(build one with `python -m explorer.corpus tokenizer`)."
        )
    return AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)


def tokenize_split(
    split: CorpusSplit,
    *,
    tokenizer_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR,
) -> tuple[np.ndarray, np.ndarray]:
    """Token arrays (uint16) of the train and validation splits, cached as ``.npy``.

    Every file is preceded by the ``<|endoftext|>`` token. The cache key is the hash of
    ``tokenizer.json`` and the corpus fingerprint (file names and sizes).
    """
    tokenizer_dir = Path(tokenizer_dir)
    tok = load_tokenizer(tokenizer_dir)
    if len(tok) > 65536:
        raise ValueError(f"`vocab_size <= 65536` must hold for uint16 caches, but got {len(tok)}.")
    key = f"{_file_sha(tokenizer_dir / 'tokenizer.json')}-{split.fingerprint()}"
    folder = Path(cache_dir) / key
    arrays = []
    for name, files in (("train", split.train_files), ("validation", split.validation_files)):
        path = folder / f"{name}.npy"
        if path.is_file():
            arrays.append(np.load(path))
            continue
        arr = _encode_files(tok, files)
        buf = io.BytesIO()
        np.save(buf, arr)
        atomic_write_bytes(path, buf.getvalue())
        arrays.append(arr)
    return arrays[0], arrays[1]


def _encode_files(tok, files: tuple[Path, ...]) -> np.ndarray:
    from explorer.corpus import read_texts

    eos = tok.eos_token_id
    encodings = tok.backend_tokenizer.encode_batch(list(read_texts(files)))
    ids = [np.asarray([eos] + e.ids, dtype=np.uint16) for e in encodings]
    return np.concatenate(ids) if ids else np.zeros(0, dtype=np.uint16)


def tokenize_files(files: tuple[Path, ...], *, tokenizer_dir: str | os.PathLike[str]) -> np.ndarray:
    """Token array (uint16) of ``files``, each preceded by ``<|endoftext|>``, without a cache.

    The same encoding as :func:`tokenize_split`; for a quick look at one split (the tests
    tokenise only the validation files).
    """
    return _encode_files(load_tokenizer(tokenizer_dir), tuple(files))


def fixed_windows(tokens: np.ndarray, *, n_windows: int, seq_len: int) -> np.ndarray:
    """``n_windows`` evenly spaced windows of ``seq_len + 1`` tokens: (n_windows, seq_len + 1)."""
    span = seq_len + 1
    if len(tokens) < span:
        raise ValueError(
            f"`len(tokens) >= seq_len + 1` must hold, but got len(tokens)={len(tokens)}, "
            f"seq_len={seq_len}."
        )
    starts = np.linspace(0, len(tokens) - span, n_windows).round().astype(np.int64)
    return np.stack([tokens[s : s + span] for s in starts]).astype(np.int64)


def random_windows(
    tokens: np.ndarray, *, seed: int, step: int, batch_size: int, seq_len: int
) -> np.ndarray:
    """The batch of step ``step``: (batch_size, seq_len + 1) windows at seeded random starts."""
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, len(tokens) - seq_len - 1 + 1, size=batch_size)
    return np.stack([tokens[s : s + seq_len + 1] for s in starts]).astype(np.int64)
