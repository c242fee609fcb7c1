"""Train (or distil) a small model on the zoo corpus: the zoo's target and drafts, and the
drafts the explorer proposes (a Llama, or a target's own layer layout).

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

This module holds the loop (:func:`train_model`, its learning-rate schedule and
:func:`command_line`) and re-exports the rest, so that ``from explorer.train import ...`` keeps
working for every name: the run's definition is in :mod:`explorer.train_config`, the tokenizer,
token arrays and windows in :mod:`explorer.train_data`, the student model in
:mod:`explorer.train_student`, the distillation teacher in :mod:`explorer.train_teacher`, and the
log, checkpoint and final folder in :mod:`explorer.train_outputs`.
"""

from __future__ import annotations

import json
import math
import sys
import time

from explorer.corpus import CorpusSplit
from explorer.train_config import (
    DEFAULT_CACHE_DIR,
    DEFAULT_TOKENIZER_DIR,
    REPO_ROOT,
    TrainConfig,
    TrainResult,
    _result_from_meta,
    _same_run,
    portable_path,
)
from explorer.train_data import (
    _file_sha,
    fixed_windows,
    load_tokenizer,
    random_windows,
    tokenize_files,
    tokenize_split,
)
from explorer.train_outputs import (
    LOG_COLUMNS,
    TOKENIZER_FILES,
    _read_log,
    _save_checkpoint,
    _save_final,
    _write_log,
)
from explorer.train_student import _load_initial_weights, build_model, count_params, evaluate_loss
from explorer.train_teacher import TeacherLogprobs, check_teacher, load_teacher

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_TOKENIZER_DIR",
    "LOG_COLUMNS",
    "REPO_ROOT",
    "TOKENIZER_FILES",
    "TeacherLogprobs",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "check_teacher",
    "command_line",
    "count_params",
    "evaluate_loss",
    "fixed_windows",
    "load_teacher",
    "load_tokenizer",
    "portable_path",
    "random_windows",
    "tokenize_files",
    "tokenize_split",
    "train_model",
]


def _lr_at(config: TrainConfig, step: int) -> float:
    """Linear warmup, then cosine decay to ``min_lr_fraction * lr`` at the last step."""
    total = config.total_steps
    warmup = max(1, round(config.warmup_fraction * total))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_fraction + (1.0 - config.min_lr_fraction) * cosine)


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
        "architecture": type(model).__name__,
        "model_type": model.config.model_type,
        "layout_from": None if config.layout_from is None else str(config.layout_from),
        "layers": config.layers,
        "hidden": config.hidden,
        "ffn": config.ffn,
        "heads": config.heads,
        "kv_heads": config.kv_heads,
        "vocab_size": vocab_size,
        "tied_embeddings": bool(getattr(model.config, "tie_word_embeddings", False)),
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


def command_line() -> str:
    """The current process's command line, for ``zoo_meta.json``."""
    return " ".join(["specdec" if a.endswith("specdec") else a for a in sys.argv])
