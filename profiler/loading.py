"""Load causal LMs and tokenizers from local Hugging Face folders, and check that a pair fits.

Acceptance and real runs need trained weights (DESIGN.md, "Contracts"); this module is the one
place that turns a folder into an eval-mode model. Every failure is a ``ValueError`` that names
the folder and the reason, so the CLI can exit 2 with one line.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from profiler.build import refuse_custom_code

__all__ = [
    "DTYPES",
    "ModelPair",
    "check_same_vocabulary",
    "load_causal_lm",
    "load_pair",
    "load_tokenizer",
    "logit_width",
    "resolve_device",
]

# names accepted by --dtype; "auto" keeps the dtype the weights were saved in
DTYPES = {
    "auto": "auto",
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


@contextlib.contextmanager
def _quiet_hf() -> Iterator[None]:
    """No progress bars or info chatter on stderr while loading (the CLI's stderr is one line)."""
    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def resolve_device(device: str | None) -> torch.device:
    """``None`` or ``"auto"``: the first CUDA device when there is one, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(f"`device` must name a torch device, but got {device=}.") from None


def _check_folder(folder: str | os.PathLike[str], what: str) -> Path:
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(
            f"`{what}` must be a local Hugging Face folder, but got {str(path)!r} (no such folder)."
        )
    if not (path / "config.json").is_file():
        raise ValueError(
            f"`{what}` must be a Hugging Face model folder, but {str(path)!r} has no config.json."
        )
    return path


def _supports_sdpa(raw: object) -> bool:
    """Whether the causal-LM class of config ``raw`` (a config.json dict) runs SDPA attention;
    True where the class is not one transformers registers (custom code: it decides)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    kind = raw.get("model_type") if isinstance(raw, dict) else None
    try:
        cls = MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.for_model(kind))]
    except (KeyError, ValueError, TypeError):
        return True
    return bool(getattr(cls, "_supports_sdpa", True))


def load_causal_lm(
    folder: str | os.PathLike[str],
    *,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str = "sdpa",
    what: str = "model",
) -> PreTrainedModel:
    """Load a causal LM from a local folder, in eval mode, on ``device``.

    Parameters
    ----------
    folder : path
        A Hugging Face model folder (config.json and weights).
    dtype : str or torch.dtype
        A key of :data:`DTYPES` or a torch dtype; "auto" keeps the saved dtype.
    device : str, torch.device or None
        Where to put the model; None picks CUDA when available.
    trust_remote_code : bool
        Allow custom modelling code from the folder (off unless asked).
    attn_implementation : str
        "sdpa" (default) or "eager"; the engine builds masks for these two. A model class
        without SDPA support (BLOOM, MPT) gets "eager" when "sdpa" was the default asked for.
    what : str
        Name of the argument in error messages ("target", "draft").

    Returns
    -------
    PreTrainedModel
        The model, eval mode, gradients off.
    """
    path = _check_folder(folder, what)
    try:
        raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # an unreadable config: transformers says why below
        raw = None
    refuse_custom_code(raw, path / "config.json", trust_remote_code=trust_remote_code)
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"`dtype in {sorted(DTYPES)}` must hold, but got {dtype=}.")
        dtype = DTYPES[dtype]
    has_safetensors = any(path.glob("*.safetensors"))
    if attn_implementation == "sdpa" and not _supports_sdpa(raw):
        attn_implementation = "eager"
    try:
        with _quiet_hf():
            model = AutoModelForCausalLM.from_pretrained(
                path,
                dtype=dtype,
                use_safetensors=True if has_safetensors else None,
                trust_remote_code=trust_remote_code,
                attn_implementation=attn_implementation,
                local_files_only=True,
            )
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, ImportError) as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ValueError(
            f"`{what}` could not be loaded as a causal LM from {str(path)!r}: {reason}"
        ) from None
    model.eval()
    model.requires_grad_(False)
    return model.to(resolve_device(device) if not isinstance(device, torch.device) else device)


def load_tokenizer(
    folder: str | os.PathLike[str], *, trust_remote_code: bool = False, what: str = "tokenizer"
):
    """Load the tokenizer saved in ``folder`` (``AutoTokenizer``); ValueError if there is none.

    A folder with none of a tokenizer's files is refused: transformers 5 would build an empty
    tokenizer of the config's class there (five tokens), and every prompt would encode to
    nothing."""
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(
            f"`{what}` must be a local folder, but got {str(path)!r} (no such folder)."
        )
    if not _has_tokenizer(path):
        raise ValueError(
            f"`the {what} folder holds a tokenizer's files ({', '.join(_TOKENIZER_FILES)})` "
            f"must hold, but {str(path)!r} has none; pass --tokenizer DIR."
        )
    try:
        with _quiet_hf():
            return AutoTokenizer.from_pretrained(
                path, trust_remote_code=trust_remote_code, local_files_only=True
            )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ValueError(
            f"`{what}` folder {str(path)!r} holds no loadable tokenizer: {reason}"
        ) from None


_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
    "spiece.model",
)  # fmt: skip


def _has_tokenizer(path: Path) -> bool:
    return any((path / n).is_file() for n in _TOKENIZER_FILES)


def logit_width(model: PreTrainedModel) -> int:
    """Columns of the model's logits: its LM head's rows (may exceed ``config.vocab_size``)."""
    head = model.get_output_embeddings()
    if head is not None and hasattr(head, "weight"):
        return int(head.weight.shape[0])
    return int(model.config.vocab_size)


def check_same_vocabulary(
    target: PreTrainedModel,
    draft: PreTrainedModel,
    *,
    target_tokenizer=None,
    draft_tokenizer=None,
) -> None:
    """Raise ``ValueError`` unless target and draft score the same token ids.

    Verification compares the two models' distributions id by id, so they need the same token ->
    id map (checked when both tokenizers are known) and the same logit width. The widths may
    differ where both tokenizers are known, equal, and their ids fit both widths: padded tables
    of one tokenizer (Qwen2.5-0.5B's 151936 rows against Qwen2.5-7B's 152064); the engine then
    proposes over the target's width (:mod:`profiler.engine`).
    """
    vocab = None
    if target_tokenizer is not None and draft_tokenizer is not None:
        t_vocab, d_vocab = target_tokenizer.get_vocab(), draft_tokenizer.get_vocab()
        if t_vocab != d_vocab:
            differ = sorted(set(t_vocab.items()) ^ set(d_vocab.items()))[:3]
            raise ValueError(
                "`target and draft share a vocabulary` must hold, but their tokenizers map tokens "
                f"to different ids (for example {differ})."
            )
        vocab = t_vocab
    t_width, d_width = logit_width(target), logit_width(draft)
    if t_width != d_width:
        top = max(vocab.values(), default=-1) if vocab is not None else None
        if top is None or top >= min(t_width, d_width):
            why = (
                "no tokenizer in the draft's folder to check them against"
                if top is None
                else f"the tokenizer's largest id {top} does not fit both"
            )
            raise ValueError(
                "`target and draft share a vocabulary` must hold, but got logit widths "
                f"target={t_width} and draft={d_width} ({why}; widths may differ only for one "
                "tokenizer's padded tables)."
            )


@dataclass(frozen=True)
class ModelPair:
    """A target, an optional draft, and the tokenizer they share."""

    target: PreTrainedModel
    draft: PreTrainedModel | None
    tokenizer: object
    target_path: Path
    draft_path: Path | None


def load_pair(
    target: str | os.PathLike[str],
    draft: str | os.PathLike[str] | None = None,
    *,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
    tokenizer: str | os.PathLike[str] | None = None,
) -> ModelPair:
    """Load a target (and a draft) from local folders and check they share a vocabulary.

    The tokenizer comes from ``tokenizer`` when given, else from the target's folder.
    """
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    target_path = Path(target)
    target_model = load_causal_lm(
        target_path, dtype=dtype, device=device, trust_remote_code=trust_remote_code, what="target"
    )
    tok = load_tokenizer(
        tokenizer or target_path, trust_remote_code=trust_remote_code, what="tokenizer"
    )
    draft_model, draft_path = None, None
    if draft is not None:
        draft_path = Path(draft)
        draft_model = load_causal_lm(
            draft_path,
            dtype=dtype,
            device=device,
            trust_remote_code=trust_remote_code,
            what="draft",
        )
        draft_tok = None
        if _has_tokenizer(draft_path):
            draft_tok = load_tokenizer(
                draft_path, trust_remote_code=trust_remote_code, what="draft"
            )
        check_same_vocabulary(
            target_model, draft_model, target_tokenizer=tok, draft_tokenizer=draft_tok
        )
    return ModelPair(target_model, draft_model, tok, target_path, draft_path)
