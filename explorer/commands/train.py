"""``specdec train``: train or distil a small model on the zoo corpus (explorer.train)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train (or distil from a teacher) a small model on the stdlib corpus"
DESCRIPTION = """\
Train a LlamaForCausalLM of the given shape (or, with --layout, a model of another folder's class
and layer layout) on the Python standard library corpus with a token budget, or distil it from a
teacher folder (KL(teacher || student) at temperature 1). The output
folder gets a training log and a resumable checkpoint while it runs and ends as a Hugging Face
folder (config.json, fp16 model.safetensors, tokenizer, zoo_meta.json). Running the same command
again with the same --out resumes from the checkpoint.

examples:
  specdec train --out runs/tiny --layers 2 --hidden 128 --tokens 200000
  specdec train --out data/zoo/drafts/d2-h256 --layers 2 --hidden 256 \\
      --teacher data/zoo/target --tokens 3000000
  specdec train --out runs/qwen-draft --layers 2 --hidden 256 --layout ~/models/qwen3-target \\
      --teacher ~/models/qwen3-target --tokenizer ~/models/qwen3-target --tokens 1000000
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--tokens", required=True, type=int, help="token budget (> 0)")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers (default 2)")
    parser.add_argument("--hidden", type=int, default=256, help="hidden size (default 256)")
    parser.add_argument("--ffn", type=int, default=None, help="MLP size (default ~8/3 hidden)")
    parser.add_argument("--heads", type=int, default=None, help="attention heads (hidden/64)")
    parser.add_argument("--kv-heads", type=int, default=None, help="KV heads (default heads)")
    parser.add_argument("--teacher", type=Path, default=None, help="HF folder to distil from")
    parser.add_argument(
        "--ce-weight",
        type=float,
        default=0.0,
        help="weight of next-token CE mixed into the distillation loss (default 0)",
    )
    parser.add_argument(
        "--init-from", type=Path, default=None, help="HF folder of the same shape to start from"
    )
    parser.add_argument(
        "--layout",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="HF folder whose model class and layer layout the model takes (default: Llama)",
    )
    parser.add_argument("--corpus", type=Path, default=None, help="corpus folder (stdlib)")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder")
    parser.add_argument("--cache-dir", type=Path, default=None, help="token cache (runs/cache)")
    parser.add_argument("--seq-len", type=int, default=256, help="window length (default 256)")
    parser.add_argument("--batch-size", type=int, default=16, help="windows per step (16)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (1e-3)")
    parser.add_argument("--warmup-fraction", type=float, default=0.05, help="warmup (0.05)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--eval-every", type=int, default=50, help="steps between validations")
    parser.add_argument("--eval-windows", type=int, default=32, help="validation windows (32)")
    parser.add_argument(
        "--checkpoint-every-s", type=float, default=120.0, help="seconds between checkpoints"
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> dict:
    from explorer.train import TrainConfig, command_line, train_model

    optional = {
        "corpus": args.corpus,
        "tokenizer_dir": args.tokenizer,
        "cache_dir": args.cache_dir,
    }
    config = TrainConfig(
        out_dir=args.out,
        tokens=args.tokens,
        layers=args.layers,
        hidden=args.hidden,
        ffn=args.ffn,
        heads=args.heads,
        kv_heads=args.kv_heads,
        teacher=args.teacher,
        ce_weight=args.ce_weight,
        init_from=args.init_from,
        layout_from=args.layout,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_fraction=args.warmup_fraction,
        seed=args.seed,
        eval_every_steps=args.eval_every,
        eval_windows=args.eval_windows,
        checkpoint_every_s=args.checkpoint_every_s,
        device=args.device,
        **{k: v for k, v in optional.items() if v is not None},
    )
    result = train_model(config, command=command_line(), progress=not args.no_progress)
    return {
        "out_dir": str(result.out_dir),
        "params": result.params,
        "steps": result.steps,
        "tokens_trained": result.tokens_trained,
        "val_loss": result.val_loss,
        "train_loss": result.train_loss,
        "wall_s": result.wall_s,
        "tokens_per_s": result.tokens_per_s,
        "resumed_from_step": result.resumed_from_step,
    }


def format_text(result: dict) -> str:
    return (
        f"saved {result['out_dir']}: {result['params']:,} parameters, "
        f"{result['tokens_trained']:,} tokens in {result['steps']} steps, "
        f"val loss {result['val_loss']:.4f} nats/token, {result['wall_s']:.0f} s "
        f"({result['tokens_per_s']:.0f} tokens/s)" + _resumed_note(result)
    )


def _resumed_note(result: dict) -> str:
    if result["resumed_from_step"] == result["steps"]:
        return " (already finished: nothing was trained)"
    if result["resumed_from_step"]:
        return f", resumed from step {result['resumed_from_step']}"
    return ""
