"""Prompt files: JSONL with a ``prompt`` field, or plain text with one prompt a line.

The format is decided per file: if the first non-blank line parses as a JSON object, every
non-blank line must be one with a string ``prompt`` field; otherwise every non-blank line is a
prompt. Blank lines are skipped. A file with no prompt is an error (``ValueError``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["load_prompts", "tokenize_prompts"]


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


def load_prompts(path: str | os.PathLike[str], *, limit: int | None = None) -> list[str]:
    """Read prompts from ``path`` (JSONL or plain text), at most ``limit`` of them.

    Raises
    ------
    ValueError
        The file is missing, empty, or a JSONL line lacks a string ``prompt``.
    """
    path = Path(path)
    if limit is not None and limit < 1:
        raise ValueError(f"`limit >= 1` must hold, but got {limit=}.")
    if not path.is_file():
        raise ValueError(f"`prompts` must be a file, but got {str(path)!r} (no such file).")
    lines = [(i, line) for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)]
    lines = [(i, line) for i, line in lines if line.strip()]
    if not lines:
        raise ValueError(f"`prompts` must hold at least one prompt, but {str(path)!r} is empty.")
    prompts: list[str] = []
    if _is_json_object(lines[0][1]):
        for number, line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"`prompts` line {number} of {str(path)!r} is not JSON: {exc}"
                ) from None
            if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
                raise ValueError(
                    f"`prompts` line {number} of {str(path)!r} must be an object with a string "
                    "'prompt' field."
                )
            prompts.append(record["prompt"])
    else:
        prompts = [line for _, line in lines]
    return prompts[:limit] if limit is not None else prompts


def tokenize_prompts(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prompt (with the tokenizer's special tokens); each must be non-empty."""
    ids = [list(tokenizer(p, add_special_tokens=True)["input_ids"]) for p in prompts]
    for i, row in enumerate(ids):
        if not row:
            raise ValueError(
                f"`len(tokens) >= 1` must hold for every prompt, but prompt {i} has no tokens."
            )
    return ids
