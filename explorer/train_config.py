"""The definition of a training run: :class:`TrainConfig`, :class:`TrainResult` and run identity.

A run is fully described by a :class:`TrainConfig` (validated and completed in
``__post_init__``). Its :meth:`TrainConfig.identity` is what ``<out>/checkpoint.pt`` and
``<out>/zoo_meta.json`` record, so that :func:`explorer.train.train_model` resumes only a run of
the same configuration (:func:`_same_run`) and recognises a finished one from another checkout
(paths are stored relative to the repository, :func:`portable_path`). A finished run reports a
:class:`TrainResult`, also rebuilt from ``zoo_meta.json`` (:func:`_result_from_meta`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from explorer.corpus import stdlib_path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TOKENIZER_DIR = REPO_ROOT / "data" / "zoo" / "tokenizer"
DEFAULT_CACHE_DIR = REPO_ROOT / "runs" / "cache"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run.

    Parameters
    ----------
    out_dir : Path
        Output folder (Hugging Face folder at the end; checkpoint and log meanwhile).
    tokens : int
        Token budget: training stops after ``ceil(tokens / (batch_size * seq_len))`` steps.
    layers, hidden, ffn, heads, kv_heads : int
        Llama shape. ``ffn`` defaults to ``round(8/3 * hidden)`` rounded up to a multiple of 64,
        ``heads`` to ``hidden // 64`` (at least 1), ``kv_heads`` to ``heads``.
    teacher : Path or None
        A Hugging Face folder to distil from (its vocabulary must equal the tokenizer's).
    ce_weight : float
        Weight of next-token cross-entropy mixed into the distillation loss, in [0, 1].
    init_from : Path or None
        A Hugging Face folder of the same shape whose weights start the run (continued
        training with a fresh optimizer and schedule) instead of a random initialisation.
    layout_from : Path or None
        A Hugging Face folder (or config.json) whose model class and layer layout the student
        takes, with this shape (:func:`explorer.train_student.layout_config`): a draft of a
        target's own layout. None: a ``LlamaForCausalLM`` (``max_position_embeddings`` positions).
    seq_len, batch_size : int
        Window length in tokens and windows per step.
    lr : float
        Peak learning rate of AdamW; linear warmup over ``warmup_fraction`` of the steps, then
        cosine decay to ``min_lr_fraction * lr``.
    eval_every_steps, eval_windows : int
        Validation every so many steps, on this many fixed windows of the validation split.
    checkpoint_every_s : float
        Wall time between checkpoints, in seconds.
    cache_teacher : bool
        Store the teacher's log-probabilities per step under ``cache_dir`` and reuse them
        (see :class:`explorer.train_teacher.TeacherLogprobs`).
    """

    out_dir: Path
    tokens: int
    layers: int = 2
    hidden: int = 256
    ffn: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    teacher: Path | None = None
    ce_weight: float = 0.0
    init_from: Path | None = None
    layout_from: Path | None = None
    corpus: Path = field(default_factory=stdlib_path)
    tokenizer_dir: Path = DEFAULT_TOKENIZER_DIR
    cache_dir: Path = DEFAULT_CACHE_DIR
    seq_len: int = 256
    batch_size: int = 16
    lr: float = 1e-3
    min_lr_fraction: float = 0.1
    warmup_fraction: float = 0.05
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    eval_every_steps: int = 50
    eval_windows: int = 32
    checkpoint_every_s: float = 120.0
    max_position_embeddings: int = 2048
    cache_teacher: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("out_dir", "corpus", "tokenizer_dir", "cache_dir"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        for name in ("teacher", "init_from", "layout_from"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        heads = self.heads if self.heads is not None else max(1, self.hidden // 64)
        object.__setattr__(self, "heads", heads)
        if self.kv_heads is None:
            object.__setattr__(self, "kv_heads", heads)
        if self.ffn is None:
            object.__setattr__(self, "ffn", 64 * math.ceil(8 * self.hidden / 3 / 64))
        positive = {
            "tokens": self.tokens,
            "layers": self.layers,
            "hidden": self.hidden,
            "ffn": self.ffn,
            "heads": self.heads,
            "kv_heads": self.kv_heads,
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
            "eval_every_steps": self.eval_every_steps,
            "eval_windows": self.eval_windows,
        }
        for name, value in positive.items():
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"`{name} > 0` must hold, but got {name}={value!r}.")
        if self.hidden % self.heads:
            raise ValueError(
                f"`hidden % heads == 0` must hold, but got hidden={self.hidden}, heads={self.heads}."
            )
        if self.heads % self.kv_heads:
            raise ValueError(
                f"`heads % kv_heads == 0` must hold, but got heads={self.heads}, "
                f"kv_heads={self.kv_heads}."
            )
        if not 0.0 <= self.ce_weight <= 1.0:
            raise ValueError(
                f"`0 <= ce_weight <= 1` must hold, but got ce_weight={self.ce_weight}."
            )
        if not self.lr > 0:
            raise ValueError(f"`lr > 0` must hold, but got lr={self.lr}.")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(
                f"`0 <= warmup_fraction < 1` must hold, but got warmup_fraction={self.warmup_fraction}."
            )
        if self.seq_len > self.max_position_embeddings:
            raise ValueError(
                f"`seq_len <= max_position_embeddings` must hold, but got seq_len={self.seq_len}, "
                f"max_position_embeddings={self.max_position_embeddings}."
            )

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def total_steps(self) -> int:
        return math.ceil(self.tokens / self.tokens_per_step)

    @property
    def distilled(self) -> bool:
        return self.teacher is not None

    def identity(self) -> dict[str, object]:
        """The fields that must match for a checkpoint to be resumed (paths as strings)."""
        d = dataclasses.asdict(self)
        for key in ("out_dir", "checkpoint_every_s", "device", "cache_dir", "cache_teacher"):
            d.pop(key)
        return {k: (portable_path(v) if isinstance(v, Path) else v) for k, v in d.items()}


def portable_path(path: str | os.PathLike[str]) -> str:
    """A path as recorded in ``zoo_meta.json``: relative to the repository when inside it, so a
    finished folder is recognised from another checkout."""
    p = Path(path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(REPO_ROOT).as_posix()
        except ValueError:
            return str(p)
    return p.as_posix()


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports (also written to ``<out>/zoo_meta.json``)."""

    out_dir: Path
    params: int
    steps: int
    tokens_trained: int
    val_loss: float
    train_loss: float | None
    wall_s: float
    tokens_per_s: float
    resumed_from_step: int
    meta: dict[str, object]


def _same_run(stored: dict | None, identity: dict) -> bool:
    """Whether a stored run identity is this run's; a field added to ``TrainConfig`` after the
    run was stored counts as equal when this run leaves it at its default."""
    if stored is None:
        return False
    defaults = {
        f.name: f.default
        for f in dataclasses.fields(TrainConfig)
        if f.default is not dataclasses.MISSING
    }
    paths = {"corpus", "tokenizer_dir", "teacher", "init_from", "layout_from"}
    filled = {k: stored.get(k, defaults.get(k)) for k in identity}
    filled = {
        k: portable_path(v) if k in paths and isinstance(v, str) else v for k, v in filled.items()
    }
    return filled == identity and set(stored) <= set(identity)


def _result_from_meta(out: Path, meta: dict, *, resumed_from_step: int) -> TrainResult:
    return TrainResult(
        out_dir=out,
        params=int(meta["params"]),
        steps=int(meta["steps"]),
        tokens_trained=int(meta["tokens_trained"]),
        val_loss=float(meta["val_loss"]),
        train_loss=meta.get("train_loss"),
        wall_s=float(meta["wall_s"]),
        tokens_per_s=float(meta["tokens_per_s"] or 0.0),
        resumed_from_step=resumed_from_step,
        meta=meta,
    )
