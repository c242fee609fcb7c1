"""The student model of a training run: a small ``LlamaForCausalLM`` and what is done to it.

:func:`build_model` initialises the configured shape (tied embeddings, seeded),
:func:`_load_initial_weights` starts it instead from a Hugging Face folder of the same shape
(continued training), :func:`count_params` counts its parameters once each and
:func:`evaluate_loss` measures its mean next-token cross-entropy on fixed windows. torch and
transformers are imported inside the functions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from explorer.train_config import TrainConfig


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
