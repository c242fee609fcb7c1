"""`specdec validate`: train the top drafts of a search, run them, compare with the prediction."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "train the top K drafts of a search, run real speculative decoding, compare with predictions"
DESCRIPTION = """\
For each of the top K distinct feasible drafts of a study made by `specdec search`: train
(distil) it from the study's target with the zoo's training code on --token-budget tokens, run
real speculative decoding at its proposed gamma and plain decoding on held-out HumanEval prompts
(by default prompts 32.., which the zoo's measurements never used), and compare predicted and
measured acceptance rate, draft latency, tokens/s and speedup. The prediction is made twice: with
alpha from the acceptance model (a draft that did not exist before) and with the measured alpha
plugged in (the latency and step model alone).

Writes validation.csv and validation.json (atomically) to --out (default runs/<study>/validate/),
and records each trial's measured truth in the study (study user attribute validation:<trial>,
and a copy of the trial with measured_* user attributes next to the predictions).

example:
  specdec search --target data/zoo/target --device-profile data/profiles/<device> --study s1
  specdec validate --study s1 --top 3 --token-budget 98304
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--study", required=True, metavar="NAME", help="study made by specdec search"
    )
    parser.add_argument(
        "--storage", metavar="URL", help="its storage (default sqlite:///runs/<study>.db)"
    )
    parser.add_argument(
        "--top", type=int, default=3, metavar="K", help="drafts to validate (default 3)"
    )
    parser.add_argument(
        "--token-budget",
        type=int,
        metavar="N",
        help="training tokens per draft (default: the study's training_tokens)",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="output folder (default runs/<study>/validate/)"
    )
    parser.add_argument(
        "--prompts", metavar="FILE", help="prompt file (default data/prompts/humaneval.jsonl)"
    )
    parser.add_argument(
        "--first-prompt",
        type=int,
        default=32,
        metavar="I",
        help="first held-out prompt (default 32)",
    )
    parser.add_argument(
        "--n-prompts", type=int, default=8, metavar="N", help="held-out prompts (default 8)"
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=64, metavar="N", help="tokens per prompt (default 64)"
    )
    parser.add_argument(
        "--no-write-back", action="store_true", help="do not record the truth in the study"
    )
    parser.add_argument(
        "--time-basis",
        choices=("auto", "cpu", "wall"),
        default="auto",
        help="measured time: wall clock, or CPU-time adjusted (what an idle machine would take; "
        "auto: cpu when the latency model was fitted to CPU time)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch threads for the runs (default: those of the device profile)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        metavar="T",
        help="sampling temperature of the runs (default 1, as the zoo's measured alpha; 0 = greedy)",
    )
    train = parser.add_argument_group("training (as in specdec train; defaults: the zoo's)")
    train.add_argument("--corpus", metavar="DIR", help="training corpus folder")
    train.add_argument(
        "--tokenizer",
        metavar="DIR",
        help="tokenizer folder, also the runs' (default: the target's own when its folder holds "
        "a tokenizer.json, else the zoo's)",
    )
    train.add_argument("--cache-dir", metavar="DIR", help="token and teacher cache")
    train.add_argument(
        "--seq-len", type=int, default=256, metavar="N", help="window length (default 256)"
    )
    train.add_argument(
        "--batch-size", type=int, default=8, metavar="N", help="windows per step (default 8)"
    )
    train.add_argument(
        "--eval-windows", type=int, default=8, metavar="N", help="validation windows (default 8)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    import optuna

    from explorer import search as s
    from explorer import validate as v

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s.check_study_name(args.study)  # it names runs/<study>/validate too
    store, shown = s.open_existing_storage(args.storage, study_name=args.study)
    try:
        study = optuna.load_study(study_name=args.study, storage=store)
    except KeyError:
        raise ValueError(
            f"`study {args.study!r} exists in {shown}` must hold, but it does not."
        ) from None
    settings = study.user_attrs.get(s.SETTINGS_ATTR) or {}
    target = Path(str(settings.get("target", "")))
    if not (target / "config.json").is_file():
        raise ValueError(
            "`the study's target is a trained model folder` must hold to train and run drafts, but "
            f"got target={settings.get('target')!r}."
        )
    budget = args.token_budget or settings.get("training_tokens")
    if budget is None:
        raise ValueError("`--token-budget N` must be given (the study records no training_tokens).")
    out = Path(args.out) if args.out else s.RUNS_DIR / args.study / "validate"
    extra: dict[str, Any] = {"prompts": Path(args.prompts)} if args.prompts else {}
    for key, value in (
        ("corpus", args.corpus),
        ("tokenizer_dir", args.tokenizer or _own_tokenizer(target)),
        ("cache_dir", args.cache_dir),
    ):
        if value:
            extra[key] = Path(value)
    plan = v.ValidationPlan(
        token_budget=int(budget),
        out_dir=out,
        target_dir=target,
        first_prompt=args.first_prompt,
        n_prompts=args.n_prompts,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        time_basis=args.time_basis,
        threads=args.threads
        or v.profile_threads(settings.get("latency", {}).get("device_profile")),
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        eval_windows=args.eval_windows,
        **extra,
    )
    table = v.validate_study(
        study,
        plan=plan,
        top=args.top,
        write_back=not args.no_write_back,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    summary = v.summarize(table)
    paths = v.write_validation(table, out, summary=summary)
    return {
        "study": args.study,
        "storage": s.mask_url(args.storage or s.default_storage(args.study)),
        "token_budget": int(budget),
        "summary": summary,
        "rows": v._jsonable_rows(table),
        "files": {k: str(p) for k, p in paths.items()},
    }


def format_text(result: dict[str, Any]) -> str:
    lines = [
        f"validation of study {result['study']} ({result['storage']}), {result['token_budget']} training tokens per draft"
    ]
    for r in result["rows"]:
        lines.append(
            f"  trial {r['trial']} {r['draft']}: alpha pred {r['predicted_acceptance_rate']:.3f} "
            f"[{r['predicted_acceptance_lower']:.3f}, {r['predicted_acceptance_upper']:.3f}] meas "
            f"{r['measured_acceptance_rate']:.3f} | draft ms pred {r['predicted_draft_pass_ms']:.3f} meas "
            f"{r['measured_draft_pass_ms']:.3f} | tok/s pred {r['predicted_tokens_per_s']:.1f} "
            f"(meas-alpha {r['predicted_tokens_per_s_measured_alpha']:.1f}) meas {r['measured_tokens_per_s']:.1f} "
            f"| speedup pred {r['predicted_speedup']:.2f}x meas {r['measured_speedup']:.2f}x"
        )
    sm = result["summary"]
    lines.append(
        "median |error| of tokens/s, overhead as searched: measured alpha "
        f"{_pct(sm.get('median_abs_rel_error_tokens_per_s_measured_alpha'))}, predicted alpha "
        f"{_pct(sm.get('median_abs_rel_error_tokens_per_s_predicted_alpha'))}; with the measured "
        f"per-step overhead: measured alpha {_pct(sm.get('median_abs_rel_error_tokens_per_s_measured_alpha_overhead'))} "
        f"(goal <= 5%), predicted alpha "
        f"{_pct(sm.get('median_abs_rel_error_tokens_per_s_predicted_alpha_measured_overhead'))} (goal <= 10%)"
    )
    lines.append(f"written: {result['files']['csv']}, {result['files']['json']}")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _own_tokenizer(target: Path) -> Path | None:
    """The target folder, when it holds a tokenizer.json other than the zoo's: drafts are
    trained (and run) with the target's own tokenizer; None keeps the zoo's default."""
    from explorer.train_config import DEFAULT_TOKENIZER_DIR

    own, zoo = target / "tokenizer.json", DEFAULT_TOKENIZER_DIR / "tokenizer.json"
    if not own.is_file() or (zoo.is_file() and own.read_bytes() == zoo.read_bytes()):
        return None
    return target
