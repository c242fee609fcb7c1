"""Parsing helpers shared by the subcommands: comma lists and numbers with their rules."""

from __future__ import annotations

from explorer.cli import UsageError


def int_list(text: str, *, flag: str, minimum: int = 1) -> list[int]:
    """Parse ``"1,4,8"`` into ``[1, 4, 8]``; every value must be an integer >= ``minimum``."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated integers, but got {text!r}.") from None
    if not values or any(v < minimum for v in values):
        raise UsageError(f"{flag} takes integers >= {minimum}, but got {text!r}.")
    return values


def float_list(text: str, *, flag: str) -> list[float]:
    """Parse ``"0.9,0.8"`` into floats."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated numbers, but got {text!r}.") from None
    if not values:
        raise UsageError(f"{flag} takes at least one number, but got {text!r}.")
    return values
