"""The teacher of a distillation run: checked, loaded, and its log-probabilities cached per step.

With ``TrainConfig.teacher`` set, :func:`explorer.train.train_model` minimises
``(1 - ce_weight) * KL(teacher || student) + ce_weight * CE(next token)``; the teacher's side is
:class:`TeacherLogprobs`, which computes the teacher's next-token log-probabilities for a step's
batch once and stores them (fp16 ``.npy``) for every later draft trained on the same batches.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from explorer.train_config import TrainConfig
from explorer.train_data import _file_sha
from perfmodel.atomic import atomic_write_bytes


def check_teacher(teacher_dir: Path, *, vocab_size: int) -> None:
    """Raise ValueError unless ``teacher_dir`` is a HF folder whose vocabulary is ``vocab_size``
    (an image-text model's is its language model's); custom model code is refused as the
    profiler refuses it."""
    from profiler.build import resolve_model

    if not (teacher_dir / "config.json").is_file():
        raise ValueError(
            f"`teacher` must be a Hugging Face folder with config.json, but got "
            f"teacher={str(teacher_dir)!r}."
        )
    try:
        teacher_vocab = resolve_model(str(teacher_dir)).config.vocab_size
    except ValueError as exc:
        if "trust_remote_code" not in str(exc):
            raise
        raise ValueError(
            "`teacher` must be a model transformers builds without custom code (specdec train "
            f"runs none), but {str(teacher_dir)!r} names its own in config.json (auto_map)."
        ) from None
    if teacher_vocab != vocab_size:
        raise ValueError(
            f"`teacher vocab_size == student vocab_size` must hold, but got "
            f"teacher_vocab={teacher_vocab}, student_vocab={vocab_size}."
        )


def load_teacher(teacher_dir: Path, *, vocab_size: int, device: str = "cpu"):
    """Load a teacher folder in fp32, eval mode; its vocabulary must equal ``vocab_size``."""
    from profiler.loading import load_causal_lm

    check_teacher(teacher_dir, vocab_size=vocab_size)
    # fp32, eval mode, gradients off; safetensors where the folder has them, no custom code
    return load_causal_lm(teacher_dir, dtype="float32", device=device, what="teacher")


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
