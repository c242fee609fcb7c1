"""What a training run writes to its ``out_dir``: the log, the checkpoint and the final folder.

``training_log.csv`` (columns :data:`LOG_COLUMNS`, one row per evaluation) is rewritten
atomically after each evaluation; ``checkpoint.pt`` is written to a temporary file, then renamed;
the final Hugging Face folder (``config.json``, fp16 ``model.safetensors``, the tokenizer files
:data:`TOKENIZER_FILES`) is written to a temporary folder and renamed into place, with
``zoo_meta.json`` last, so that its presence means the run finished.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from pathlib import Path

from explorer.train_config import TrainConfig
from perfmodel.atomic import atomic_write_json, atomic_write_text

LOG_COLUMNS = ("step", "tokens", "train_loss", "val_loss", "lr", "elapsed_s")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


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
