"""The student model of a training run: a small causal LM and what is done to it.

:func:`build_model` initialises the configured shape, seeded: a ``LlamaForCausalLM`` (tied
embeddings) by default, or, with ``TrainConfig.layout_from``, a model of that folder's class and
layer layout (:func:`layout_config`: its config with the shape replaced, its mixture of experts
made dense); :func:`_load_initial_weights` starts it instead from a Hugging Face folder of the same
shape (continued training), :func:`count_params` counts its parameters once each and
:func:`evaluate_loss` measures its mean next-token cross-entropy on fixed windows. torch and
transformers are imported inside the functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from explorer.train_config import TrainConfig

# Mixture-of-experts model types and the dense type of the same layer layout in transformers.
_DENSE_TYPE = {
    "mixtral": "mistral",
    "qwen2_moe": "qwen2",
    "qwen3_moe": "qwen3",
    "granitemoe": "granite",
}
# Mixture-of-experts types without one, kept with a single expert that every token is routed to:
# a dense MLP plus a router of one column. The config names of (experts, experts per token).
_ONE_EXPERT = {
    "gpt_oss": ("num_local_experts", "num_experts_per_tok"),
    "olmoe": ("num_experts", "num_experts_per_tok"),
}


def build_model(config: TrainConfig, *, vocab_size: int, eos_token_id: int):
    """A randomly initialised student of the configured shape: a ``LlamaForCausalLM`` (tied
    embeddings), or the class and layout of ``config.layout_from`` (:func:`layout_config`)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    if config.layout_from is not None:
        cfg = layout_config(config, vocab_size=vocab_size, eos_token_id=eos_token_id)
        torch.manual_seed(config.seed)
        return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
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


def layout_config(config: TrainConfig, *, vocab_size: int, eos_token_id: int) -> Any:
    """The config of a student that takes ``config.layout_from``'s model class and layer layout.

    The folder's config (an image-text model's language model) with the configured depth, width,
    MLP width, heads and key/value heads (head width hidden / heads; per-layer lists such as
    ``layer_types`` cycled), the tokenizer's vocabulary and end-of-text token, and its own
    tying, position table, norms, biases and activation: the draft ``specdec search`` proposed
    for that target (:meth:`explorer.space.DraftConfig.arch`). A mixture of experts becomes dense
    (Mixtral a Mistral, Qwen2/3-MoE a Qwen2/3, Granite-MoE a Granite; gpt-oss and OLMoE keep their
    class with one expert that every token takes, so a router of one column, and gpt-oss's
    expert biases, are counted beside the dense draft's parameters).

    Raises
    ------
    ValueError
        The folder is not a model transformers can build (or names its own code), a shape its
        config refuses, a mixture of experts of another type, or ``seq_len`` beyond its
        position table.
    """
    from transformers import AutoConfig

    from profiler.build import arch_fields, resolve_model

    shape = {
        "layers": config.layers,
        "hidden": config.hidden,
        "ffn": config.ffn,
        "heads": config.heads,
        "kv_heads": config.kv_heads,
    }
    if config.kv_heads == config.heads:
        # multi-head attention: also a layout that names no key/value heads (GPT-2, OPT)
        base = resolve_model(str(config.layout_from)).config
        if getattr(base, "num_key_value_heads", None) is None:
            del shape["kv_heads"]
    cfg = resolve_model(str(config.layout_from), overrides=shape).config
    if arch_fields(cfg)["experts"]:
        if cfg.model_type in _DENSE_TYPE:
            dense_type = _DENSE_TYPE[cfg.model_type]
            known = AutoConfig.for_model(dense_type).to_dict()
            skip = {"model_type", "architectures", "transformers_version"}
            kept = {k: v for k, v in cfg.to_dict().items() if k in known and k not in skip}
            cfg = AutoConfig.for_model(dense_type, **kept)
        elif cfg.model_type in _ONE_EXPERT:
            experts, per_token = _ONE_EXPERT[cfg.model_type]
            setattr(cfg, experts, 1)
            setattr(cfg, per_token, 1)
        else:
            raise ValueError(
                "`a mixture of experts of a type with a dense counterpart` must hold to train a "
                f"draft of its layout ({', '.join(sorted(_DENSE_TYPE) + sorted(_ONE_EXPERT))}), "
                f"but {config.layout_from} is model_type={cfg.model_type!r}."
            )
    if getattr(cfg, "head_dim", None) is not None:
        cfg.head_dim = config.hidden // config.heads  # not a dense type's default head width
    cfg.vocab_size = vocab_size
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(cfg, name, eos_token_id)
    positions = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    if isinstance(positions, int) and positions < config.seq_len:
        raise ValueError(
            f"`seq_len <= the layout's position table` must hold, but got seq_len={config.seq_len} "
            f"and {positions} positions in {config.layout_from}."
        )
    cfg.use_cache = True
    return cfg


def needs_own_layout(folder: Path) -> bool:
    """Whether a draft of ``folder``'s layout differs from the default student: true for any
    model type but a Llama, and for a Llama with attention or MLP biases or an untied head (the
    default student is a tied, bias-free Llama; rotary settings and activations change no
    parameter). A student built with ``layout_from`` a plain Llama equals the default one."""
    from profiler.build import resolve_model

    cfg = resolve_model(str(folder)).config
    return (
        cfg.model_type != "llama"
        or bool(getattr(cfg, "attention_bias", False))
        or bool(getattr(cfg, "mlp_bias", False))
        or not getattr(cfg, "tie_word_embeddings", False)
    )


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


def _load_initial_weights(model, folder: Path) -> dict:
    """Copy the weights of HF folder ``folder`` into ``model`` (same shape); return its meta."""
    from profiler.loading import load_causal_lm

    if not (folder / "config.json").is_file():
        raise ValueError(
            f"`init_from` must be a Hugging Face folder with config.json, but got "
            f"init_from={str(folder)!r}."
        )
    source = load_causal_lm(folder, dtype="float32", device="cpu", what="init_from")
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
