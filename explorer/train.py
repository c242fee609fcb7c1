"""Train (or distil) a small Llama model on the zoo corpus: the zoo's target and drafts.

:func:`train_model` is what ``specdec train`` runs and what the explorer calls to train the drafts
it proposes. A run is fully described by a :class:`TrainConfig`; it is deterministic for a given
seed on a given machine (batches are drawn from ``numpy.random.default_rng([seed, step])``, so a
resumed run draws the same batches as an uninterrupted one), shows a tqdm progress bar, logs the
validation loss to ``<out>/training_log.csv``, writes a resumable checkpoint to
``<out>/checkpoint.pt`` (atomically: temporary file, then rename) and ends with a Hugging Face
folder: ``config.json``, ``model.safetensors`` (fp16), the tokenizer files and ``zoo_meta.json``.
Running the same configuration again with the same ``out_dir`` resumes from the checkpoint, or
returns at once when ``zoo_meta.json`` says the run finished.

Distillation (``teacher`` set): the loss is ``(1 - ce_weight) * KL(teacher || student) +
ce_weight * CE(next token)`` at temperature 1 over every position of every window. The default
``ce_weight = 0`` is pure distillation: the draft is trained to match the target's whole
next-token distribution, which is what speculative sampling's acceptance rate
``Σ_x min(p(x), q(x))`` rewards, and what the seed paper does.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from explorer.corpus import CorpusSplit, stdlib_path
from perfmodel.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TOKENIZER_DIR = REPO_ROOT / "data" / "zoo" / "tokenizer"
DEFAULT_CACHE_DIR = REPO_ROOT / "runs" / "cache"
LOG_COLUMNS = ("step", "tokens", "train_loss", "val_loss", "lr", "elapsed_s")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


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
        (see :class:`TeacherLogprobs`).
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
        for name in ("teacher", "init_from"):
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


# --- data -------------------------------------------------------------------------------------


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
    return AutoTokenizer.from_pretrained(folder)


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


# --- model ------------------------------------------------------------------------------------


def build_model(config: TrainConfig, *, vocab_size: int, eos_token_id: int):
    """A randomly initialised ``LlamaForCausalLM`` of the configured shape (tied embeddings)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden,
        intermediate_size=config.ffn,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.kv_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )
    torch.manual_seed(config.seed)
    return LlamaForCausalLM(cfg)


def count_params(model) -> int:
    """Parameters counted once each (the tied embedding / LM head counts once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def evaluate_loss(model, windows: np.ndarray, *, batch_size: int = 8, device: str = "cpu") -> float:
    """Mean next-token cross-entropy (nats) of ``model`` over fixed windows (n, seq_len + 1)."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(windows), batch_size):
            w = torch.as_tensor(windows[i : i + batch_size], device=device)
            logits = model(input_ids=w[:, :-1]).logits.float()
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum"
            )
            total += loss.item()
            count += w[:, 1:].numel()
    model.train(was_training)
    return total / count


def _lr_at(config: TrainConfig, step: int) -> float:
    """Linear warmup, then cosine decay to ``min_lr_fraction * lr`` at the last step."""
    total = config.total_steps
    warmup = max(1, round(config.warmup_fraction * total))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_fraction + (1.0 - config.min_lr_fraction) * cosine)


def check_teacher(teacher_dir: Path, *, vocab_size: int) -> None:
    """Raise ValueError unless ``teacher_dir`` is a HF folder whose vocabulary is ``vocab_size``."""
    from transformers import AutoConfig

    if not (teacher_dir / "config.json").is_file():
        raise ValueError(
            f"`teacher` must be a Hugging Face folder with config.json, but got "
            f"teacher={str(teacher_dir)!r}."
        )
    teacher_vocab = AutoConfig.from_pretrained(teacher_dir).vocab_size
    if teacher_vocab != vocab_size:
        raise ValueError(
            f"`teacher vocab_size == student vocab_size` must hold, but got "
            f"teacher_vocab={teacher_vocab}, student_vocab={vocab_size}."
        )


def load_teacher(teacher_dir: Path, *, vocab_size: int, device: str = "cpu"):
    """Load a teacher folder in fp32, eval mode; its vocabulary must equal ``vocab_size``."""
    import torch
    from transformers import AutoModelForCausalLM

    check_teacher(teacher_dir, vocab_size=vocab_size)
    model = AutoModelForCausalLM.from_pretrained(
        teacher_dir, use_safetensors=True, dtype=torch.float32
    )
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class TeacherLogprobs:
    """The teacher's next-token log-probabilities for each training step, cached on disk.

    Every draft of the zoo is trained with the same seed, batch size and window length, so it sees
    the same batches; the teacher's forward pass (most of a small draft's distillation step) is
    then computed once, stored as fp16 ``.npy`` (batch, seq_len, vocab) under ``cache_dir``, and
    read back by the next draft. fp16 keeps log-probabilities to about 1e-2 absolute at -30, well
    under what matters for the KL. The teacher's weights are loaded only when a step is missing.
    The key is the hash of the teacher's ``model.safetensors``, the token cache key, the seed,
    the batch size and the window length.
    """

    def __init__(self, config: TrainConfig, *, vocab_size: int, data_key: str) -> None:
        assert config.teacher is not None
        self.config = config
        self.vocab_size = vocab_size
        weights = config.teacher / "model.safetensors"
        weights_key = _file_sha(weights) if weights.is_file() else "noweights"
        key = (
            f"teacher-{weights_key}-{data_key}-s{config.seed}-b{config.batch_size}"
            f"-t{config.seq_len}"
        )
        self.folder = config.cache_dir / key
        self._model = None

    def __call__(self, step: int, input_ids):
        """Log-probabilities (batch, seq_len, vocab), float32, for the batch of ``step``."""
        import torch

        path = self.folder / f"{step:06d}.npy"
        if path.is_file():
            return torch.from_numpy(np.load(path).astype(np.float32))
        if self._model is None:
            self._model = load_teacher(
                self.config.teacher, vocab_size=self.vocab_size, device=self.config.device
            )
        with torch.no_grad():
            logits = self._model(input_ids=input_ids).logits.float()
            logp = torch.log_softmax(logits, dim=-1)
        if self.config.cache_teacher:
            buf = io.BytesIO()
            np.save(buf, logp.cpu().numpy().astype(np.float16))
            atomic_write_bytes(path, buf.getvalue())
            # Train on what the next draft will read, so that every draft sees the same targets.
            logp = torch.from_numpy(np.load(path).astype(np.float32)).to(logits.device)
        return logp


def _load_initial_weights(model, folder: Path) -> dict:
    """Copy the weights of HF folder ``folder`` into ``model`` (same shape); return its meta."""
    import torch
    from transformers import AutoModelForCausalLM

    if not (folder / "config.json").is_file():
        raise ValueError(
            f"`init_from` must be a Hugging Face folder with config.json, but got "
            f"init_from={str(folder)!r}."
        )
    source = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True, dtype=torch.float32)
    theirs, ours = source.state_dict(), model.state_dict()
    shapes = {k: tuple(v.shape) for k, v in theirs.items()}
    if shapes != {k: tuple(v.shape) for k, v in ours.items()}:
        raise ValueError(
            f"`init_from has the student's shape` must hold, but {str(folder)!r} has "
            f"{source.config.num_hidden_layers} layers x {source.config.hidden_size}."
        )
    model.load_state_dict(theirs)
    meta_path = folder / "zoo_meta.json"
    return json.loads(meta_path.read_text()) if meta_path.is_file() else {}


# --- log and checkpoint -----------------------------------------------------------------------


def _read_log(path: Path, *, up_to_step: int) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [row for row in csv.DictReader(fh) if int(row["step"]) <= up_to_step]


def _write_log(path: Path, rows: list[dict[str, object]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _save_checkpoint(path: Path, state: dict[str, object]) -> None:
    import torch

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _save_final(model, config: TrainConfig, meta: dict[str, object]) -> None:
    """Write the HF folder: each file is written to a temporary folder, then renamed into place;
    ``zoo_meta.json`` goes last, so its presence means the folder is complete."""
    import torch

    out = config.out_dir
    with tempfile.TemporaryDirectory(prefix=".final-", dir=out) as tmp:
        half = model.to(torch.float16)
        half.config.dtype = "float16"
        half.save_pretrained(tmp)
        for name in TOKENIZER_FILES:
            src = config.tokenizer_dir / name
            if src.is_file():
                shutil.copyfile(src, Path(tmp) / name)
        for p in sorted(Path(tmp).iterdir()):
            os.replace(p, out / p.name)
    model.to(torch.float32)
    atomic_write_json(out / "zoo_meta.json", meta)


# --- the loop ---------------------------------------------------------------------------------


def train_model(
    config: TrainConfig,
    *,
    command: str | None = None,
    progress: bool = True,
    stop_after_steps: int | None = None,
) -> TrainResult | None:
    """Train (or distil) one model as ``config`` says; resume if a checkpoint is there.

    Parameters
    ----------
    config : TrainConfig
        The run.
    command : str, optional
        The command line that started the run, recorded in ``zoo_meta.json``.
    progress : bool
        Show a tqdm progress bar on stderr.
    stop_after_steps : int, optional
        Stop after this many steps of this call, leaving a checkpoint (a time-boxed slice of a
        long run; also how the tests interrupt a run). Calling again resumes.

    Returns
    -------
    TrainResult or None
        None when stopped by ``stop_after_steps`` before the end. Otherwise parameters, steps,
        tokens trained, final validation loss (nats/token, fp16 weights evaluated in fp32 on
        ``eval_windows`` fixed windows), wall time (s) and tokens/s.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "zoo_meta.json"
    ckpt_path = out / "checkpoint.pt"
    log_path = out / "training_log.csv"
    identity = config.identity()
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if _same_run(meta.get("train_config"), identity):
            return _result_from_meta(out, meta, resumed_from_step=meta["steps"])
        raise ValueError(
            f"`out_dir` must be empty or hold this run, but got out_dir={str(out)!r} holding a "
            f"finished run with a different configuration (remove it or choose another --out)."
        )

    split = CorpusSplit(config.corpus)
    tok = load_tokenizer(config.tokenizer_dir)
    vocab_size = len(tok)
    if config.teacher is not None:
        check_teacher(config.teacher, vocab_size=vocab_size)
    train_tokens, val_tokens = tokenize_split(
        split, tokenizer_dir=config.tokenizer_dir, cache_dir=config.cache_dir
    )
    teacher = None
    if config.teacher is not None:
        data_key = f"{_file_sha(config.tokenizer_dir / 'tokenizer.json')}-{split.fingerprint()}"
        teacher = TeacherLogprobs(config, vocab_size=vocab_size, data_key=data_key)
    for name, arr in (("train", train_tokens), ("validation", val_tokens)):
        if len(arr) < config.seq_len + 1:
            raise ValueError(
                f"`{name} split tokens >= seq_len + 1` must hold, but got {len(arr)} tokens, "
                f"seq_len={config.seq_len} (corpus={str(config.corpus)!r})."
            )
    val_windows = fixed_windows(val_tokens, n_windows=config.eval_windows, seq_len=config.seq_len)

    model = build_model(config, vocab_size=vocab_size, eos_token_id=tok.eos_token_id)
    init_meta: dict = {}
    if config.init_from is not None:
        init_meta = _load_initial_weights(model, config.init_from)
    model.to(config.device).train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    start_step, elapsed_before_s = 0, 0.0
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, weights_only=True, map_location=config.device)
        if not _same_run(json.loads(state["identity"]), identity):
            raise ValueError(
                f"`out_dir` must hold a checkpoint of this configuration to resume, but got "
                f"out_dir={str(out)!r} with a checkpoint of a different run."
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_step = int(state["step"])
        elapsed_before_s = float(state["elapsed_s"])
    rows: list[dict[str, object]] = list(_read_log(log_path, up_to_step=start_step))

    params = count_params(model)
    total = config.total_steps
    t0 = time.perf_counter()
    last_ckpt = t0
    loss_sum, loss_n = 0.0, 0
    last_train_loss: float | None = None

    def elapsed() -> float:
        return elapsed_before_s + time.perf_counter() - t0

    def log(step: int) -> None:
        nonlocal loss_sum, loss_n, last_train_loss
        train_loss = loss_sum / loss_n if loss_n else None
        if train_loss is not None:
            last_train_loss = train_loss
        loss_sum, loss_n = 0.0, 0
        val = evaluate_loss(model, val_windows, device=config.device)
        rows.append(
            {
                "step": step,
                "tokens": step * config.tokens_per_step,
                "train_loss": "" if train_loss is None else f"{train_loss:.5f}",
                "val_loss": f"{val:.5f}",
                "lr": f"{_lr_at(config, max(step - 1, 0)):.3e}",
                "elapsed_s": f"{elapsed():.1f}",
            }
        )
        _write_log(log_path, rows)

    def checkpoint(step: int) -> None:
        _save_checkpoint(
            ckpt_path,
            {
                "identity": json.dumps(identity),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "elapsed_s": elapsed(),
            },
        )

    if start_step == 0 and not rows:
        log(0)
    bar = tqdm(
        total=total,
        initial=start_step,
        desc=out.name,
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
    )
    if stop_after_steps is not None and stop_after_steps <= 0:
        raise ValueError(f"`stop_after_steps > 0` must hold, but got {stop_after_steps=}.")
    for step in range(start_step, total):
        if stop_after_steps is not None and step - start_step >= stop_after_steps:
            bar.close()
            checkpoint(step)
            return None
        lr = _lr_at(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = torch.as_tensor(
            random_windows(
                train_tokens,
                seed=config.seed,
                step=step,
                batch_size=config.batch_size,
                seq_len=config.seq_len,
            ),
            device=config.device,
        )
        x, y = batch[:, :-1], batch[:, 1:]
        logits = model(input_ids=x).logits  # (batch, seq_len, vocab)
        flat = logits.reshape(-1, logits.shape[-1]).float()
        ce = F.cross_entropy(flat, y.reshape(-1))
        if teacher is None:
            loss = ce
        else:
            t_logp = teacher(step, x)  # (batch, seq_len, vocab) log-probabilities
            s_logp = F.log_softmax(flat, dim=-1)
            # KL(teacher || student), averaged over positions ("batchmean" over flattened rows).
            kl = F.kl_div(
                s_logp, t_logp.reshape(-1, t_logp.shape[-1]), log_target=True, reduction="batchmean"
            )
            loss = (1.0 - config.ce_weight) * kl + config.ce_weight * ce
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        loss_sum += ce.item()
        loss_n += 1
        done = step + 1
        bar.update(1)
        bar.set_postfix(ce=f"{ce.item():.3f}", lr=f"{lr:.1e}")
        if done % config.eval_every_steps == 0 or done == total:
            log(done)
        if time.perf_counter() - last_ckpt > config.checkpoint_every_s and done < total:
            checkpoint(done)
            last_ckpt = time.perf_counter()
    bar.close()
    if rows and int(rows[-1]["step"]) != total:
        log(total)
    if start_step < total:
        # A failure while saving the folder must not cost the training: rerunning resumes here.
        checkpoint(total)

    wall_s = elapsed()
    # The recorded validation loss is that of the saved (fp16-rounded) weights, so that a test can
    # reproduce it from the folder.
    model.to(torch.float16).to(torch.float32)
    val_loss = evaluate_loss(model, val_windows, device=config.device)
    sample_windows = min(8, config.eval_windows)
    val_loss_sample = evaluate_loss(model, val_windows[:sample_windows], device=config.device)
    if last_train_loss is None and rows and rows[-1]["train_loss"]:
        last_train_loss = float(rows[-1]["train_loss"])
    trained = total * config.tokens_per_step
    meta = {
        "name": out.name,
        "architecture": "LlamaForCausalLM",
        "layers": config.layers,
        "hidden": config.hidden,
        "ffn": config.ffn,
        "heads": config.heads,
        "kv_heads": config.kv_heads,
        "vocab_size": vocab_size,
        "tied_embeddings": True,
        "params": params,
        "tokens_budget": config.tokens,
        "tokens_trained": trained,
        "init_from": None if config.init_from is None else str(config.init_from),
        "tokens_trained_total": trained
        + int(init_meta.get("tokens_trained_total", init_meta.get("tokens_trained", 0)) or 0),
        "steps": total,
        "seq_len": config.seq_len,
        "batch_size": config.batch_size,
        "val_loss": round(val_loss, 6),
        "val_loss_sample": round(val_loss_sample, 6),
        "val_loss_sample_windows": sample_windows,
        "val_loss_note": (
            "mean next-token cross-entropy in nats/token of the saved fp16 weights evaluated in "
            "fp32 on fixed evenly spaced windows (explorer.train.fixed_windows) of the validation "
            "split; val_loss_sample uses the first val_loss_sample_windows of them"
        ),
        "train_loss": None if last_train_loss is None else round(last_train_loss, 6),
        "seed": config.seed,
        "distilled": config.distilled,
        "teacher": None if config.teacher is None else config.teacher.name,
        "ce_weight": config.ce_weight if config.distilled else 1.0,
        "wall_s": round(wall_s, 1),
        "tokens_per_s": round(trained / wall_s, 1) if wall_s > 0 else None,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "corpus_fingerprint": split.fingerprint(),
        "tokenizer_sha": _file_sha(config.tokenizer_dir / "tokenizer.json"),
        "command": command,
        "train_config": identity,
    }
    _save_final(model, config, meta)
    if ckpt_path.is_file():
        ckpt_path.unlink()
    return _result_from_meta(out, meta, resumed_from_step=start_step)


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
    paths = {"corpus", "tokenizer_dir", "teacher", "init_from"}
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


def command_line() -> str:
    """The current process's command line, for ``zoo_meta.json``."""
    return " ".join(["specdec" if a.endswith("specdec") else a for a in sys.argv])
