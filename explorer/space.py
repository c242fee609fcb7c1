"""The draft design space: depth, width, FFN multiplier, heads, KV heads and γ.

A :class:`SearchSpace` holds the bounds; :func:`suggest_config` turns an Optuna trial into a
:class:`DraftConfig`; :meth:`SearchSpace.enumerate` lists every configuration for the exhaustive
grid. Heads are derived so the shape is always valid: the width moves in steps that every
allowed head size divides (``heads = hidden / head_dim``), and KV heads are ``heads / g`` with
``g`` the largest power of two that divides both ``heads`` and the suggested group size.

Bounds come from :meth:`SearchSpace.for_target` (defaults scaled to the target), from a small
TOML or JSON file (:meth:`SearchSpace.from_file`), or from keyword overrides.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from perfmodel.arch import ArchSpec

if TYPE_CHECKING:  # optuna is imported by the callers that run a study
    import optuna

__all__ = ["DraftConfig", "SearchSpace", "suggest_config"]

# FFN widths are rounded up to a multiple of this (what HF Llama configs and GPU kernels like).
FFN_MULTIPLE = 64


@dataclass(frozen=True)
class DraftConfig:
    """One draft shape and its γ.

    Parameters
    ----------
    depth : int
        Decoder layers, >= 1.
    hidden : int
        Width, >= 1, divisible by ``heads``.
    ffn : int
        MLP inner width, >= 1.
    heads : int
        Query heads, >= 1.
    kv_heads : int
        Key/value heads, >= 1, dividing ``heads``.
    gamma : int
        γ, draft tokens proposed per step, >= 1.
    """

    depth: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    gamma: int

    def __post_init__(self) -> None:
        for name in ("depth", "hidden", "ffn", "heads", "kv_heads", "gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, but got {name}={value!r}.")
            object.__setattr__(self, name, int(value))
        if self.hidden % self.heads:
            raise ValueError(
                f"`hidden % heads == 0` must hold, but got hidden={self.hidden} and heads={self.heads}."
            )
        if self.heads % self.kv_heads:
            raise ValueError(
                f"`heads % kv_heads == 0` must hold, but got heads={self.heads} and kv_heads={self.kv_heads}."
            )

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def arch(self, target: ArchSpec) -> ArchSpec:
        """The draft's architecture: this shape with the target's vocabulary, layer layout
        (family, attention biases and sinks, norms, position table) and dtype; its head width is
        hidden / heads, its MLP dense (a mixture-of-experts target's draft too)."""
        return ArchSpec(
            layers=self.depth,
            hidden=self.hidden,
            ffn=self.ffn,
            heads=self.heads,
            kv_heads=self.kv_heads,
            vocab=target.vocab,
            tied_embeddings=target.tied_embeddings,
            family=target.family,
            bytes_per_param=target.bytes_per_param,
            max_positions=target.max_positions,
            name=self.name,
            qkv_bias=target.qkv_bias,
            out_bias=target.out_bias,
            attention_sinks=target.attention_sinks,
            qk_norm=target.qk_norm,
            qk_norm_full=target.qk_norm_full,
            sandwich_norms=target.sandwich_norms,
            position_table_rows=target.position_table_rows,
        )

    @property
    def name(self) -> str:
        return (
            f"draft-L{self.depth}-H{self.hidden}-F{self.ffn}-A{self.heads}-KV{self.kv_heads}"
            f"-g{self.gamma}"
        )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _kv_heads(heads: int, group: int) -> int:
    # largest power of two dividing both (groups are powers of two): always a divisor of heads
    g = math.gcd(heads, group)
    return heads // g


def _multi_head_opt(target: ArchSpec) -> bool:
    return target.family == "opt" and target.kv_heads == target.heads


def _ffn(hidden: int, multiplier: float) -> int:
    return FFN_MULTIPLE * math.ceil(multiplier * hidden / FFN_MULTIPLE - 1e-9)


@dataclass(frozen=True)
class SearchSpace:
    """Bounds of the draft design space.

    Parameters
    ----------
    depth_min, depth_max : int
        Decoder layers, 1 <= min <= max.
    hidden_min, hidden_max, hidden_step : int
        Width from min to max in steps of ``hidden_step``; every head size must divide the step
        and the step must divide ``hidden_min``.
    head_dims : tuple of int
        Allowed head sizes (heads = hidden / head_dim).
    kv_group_sizes : tuple of int
        Allowed query heads per KV head, powers of two (1 = multi-head attention).
    ffn_multipliers : tuple of float
        Allowed ffn / hidden ratios; ffn is rounded up to a multiple of 64.
    gamma_min, gamma_max : int
        γ from min to max, 1 <= min <= max.

    Examples
    --------
    >>> s = SearchSpace(depth_max=2, hidden_min=64, hidden_max=128, hidden_step=64,
    ...                 head_dims=(64,), kv_group_sizes=(1,), ffn_multipliers=(4.0,), gamma_max=2)
    >>> s.size, len(s.enumerate())
    (8, 8)
    """

    depth_min: int = 1
    depth_max: int = 8
    hidden_min: int = 128
    hidden_max: int = 1024
    hidden_step: int = 128
    head_dims: tuple[int, ...] = (32, 64)
    kv_group_sizes: tuple[int, ...] = (1, 2)
    ffn_multipliers: tuple[float, ...] = (2.0, 8 / 3, 4.0)
    gamma_min: int = 1
    gamma_max: int = 8

    def __post_init__(self) -> None:
        for name in (
            "depth_min",
            "depth_max",
            "hidden_min",
            "hidden_max",
            "hidden_step",
            "gamma_min",
            "gamma_max",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, but got {name}={value!r}.")
        for lo, hi in (
            ("depth_min", "depth_max"),
            ("hidden_min", "hidden_max"),
            ("gamma_min", "gamma_max"),
        ):
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(
                    f"`{lo} <= {hi}` must hold (else the space has no configuration), but got "
                    f"{lo}={getattr(self, lo)} and {hi}={getattr(self, hi)}."
                )
        for name in ("head_dims", "kv_group_sizes", "ffn_multipliers"):
            value = tuple(getattr(self, name))
            if not value:
                raise ValueError(
                    f"`{name}` must hold at least one value (else the space is empty), but got {name}=()."
                )
            object.__setattr__(self, name, value)
        if any(not isinstance(d, int) or d < 1 or self.hidden_step % d for d in self.head_dims):
            raise ValueError(
                "`hidden_step % head_dim == 0` must hold for every head_dim (so heads = hidden / "
                f"head_dim is whole), but got hidden_step={self.hidden_step} and head_dims={list(self.head_dims)}."
            )
        if any(not isinstance(g, int) or g < 1 or g & (g - 1) for g in self.kv_group_sizes):
            raise ValueError(
                f"`kv_group_sizes` must be powers of two >= 1, but got kv_group_sizes={list(self.kv_group_sizes)}."
            )
        if any(not (m > 0) for m in self.ffn_multipliers):
            raise ValueError(
                f"`ffn_multiplier > 0` must hold, but got ffn_multipliers={list(self.ffn_multipliers)}."
            )
        if self.hidden_min % self.hidden_step:
            raise ValueError(
                "`hidden_min % hidden_step == 0` must hold, but got "
                f"hidden_min={self.hidden_min} and hidden_step={self.hidden_step}."
            )
        # the largest width the step reaches (Optuna's suggest_int would do the same, warning)
        top = (
            self.hidden_min
            + (self.hidden_max - self.hidden_min) // self.hidden_step * self.hidden_step
        )
        object.__setattr__(self, "hidden_max", top)

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def for_target(cls, target: ArchSpec, **overrides: Any) -> SearchSpace:
        """Defaults scaled to the target: drafts no deeper and no wider than the target, in the
        target's layer layout.

        Width moves in steps of 64 for targets narrower than 2048 (head sizes 32, 64) and in
        steps of 128·⌊hidden/2048⌋ from 2048 on (head sizes 64, 128; so 256 for a 4096-wide
        target, 512 for 8192 and for OPT-66B's 9216), up to min(target width, 4096); depth runs
        1..min(16, target layers); γ 1..8. Key/value groups 1 and 2, only 1 for an OPT-layout
        target without grouped-query attention (OPT, GPT-2, GPT-NeoX).
        """
        step = 64 if target.hidden < 2048 else 128 * (target.hidden // 2048)
        head_dims = (32, 64) if step == 64 else (64, 128)
        hidden_max = max(step, min(target.hidden, 4096) // step * step)
        base = cls(
            depth_min=1,
            depth_max=max(1, min(16, target.layers)),
            hidden_min=step,
            hidden_max=hidden_max,
            hidden_step=step,
            head_dims=head_dims,
            kv_group_sizes=(1,) if _multi_head_opt(target) else (1, 2),
        )
        return base.with_overrides(**overrides)

    def check_target(self, target: ArchSpec) -> SearchSpace:
        """This space, after checking that every draft it holds can take the target's layout:
        ``ValueError`` for key/value groups above 1 with an OPT-layout target without
        grouped-query attention (OPT, GPT-2, GPT-NeoX: their model classes have none)."""
        if _multi_head_opt(target) and any(g > 1 for g in self.kv_group_sizes):
            raise ValueError(
                "`kv_group_sizes == [1]` must hold for a target of OPT layout without grouped-"
                "query attention (its drafts have none), but got "
                f"kv_group_sizes={list(self.kv_group_sizes)}."
            )
        return self

    def with_overrides(self, **overrides: Any) -> SearchSpace:
        """A copy with some fields replaced; ``None`` values are ignored; lists become tuples."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(
                f"`space keys in {sorted(known)}` must hold, but got unknown keys {unknown}."
            )
        clean = {
            k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None
        }
        return replace(self, **clean)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, base: SearchSpace | None = None
    ) -> SearchSpace:
        """Read bounds from a TOML or JSON file over ``base`` (default: the class defaults).

        Keys are the field names, or ``depth = [1, 8]``, ``hidden = [128, 1024]``,
        ``gamma = [1, 8]`` for a min/max pair.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"space file {str(path)!r} does not exist.")
        text = path.read_text()
        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"`the space file is valid {path.suffix[1:].upper()}` must hold, but {exc}."
            ) from None
        data = data.get("space", data)
        return (base or cls()).with_overrides(**_pairs(data, str(path)))

    # --- sampling and enumeration ---------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of (depth, hidden, head_dim, kv_group, ffn multiplier, γ) points."""
        hiddens = (self.hidden_max - self.hidden_min) // self.hidden_step + 1
        return (
            (self.depth_max - self.depth_min + 1)
            * hiddens
            * len(self.head_dims)
            * len(self.kv_group_sizes)
            * len(self.ffn_multipliers)
            * (self.gamma_max - self.gamma_min + 1)
        )

    def config(
        self,
        *,
        depth: int,
        hidden: int,
        head_dim: int,
        kv_group: int,
        ffn_multiplier: float,
        gamma: int,
    ) -> DraftConfig:
        """The draft a point of the space describes."""
        heads = hidden // head_dim
        return DraftConfig(
            depth=depth,
            hidden=hidden,
            ffn=_ffn(hidden, ffn_multiplier),
            heads=heads,
            kv_heads=_kv_heads(heads, kv_group),
            gamma=gamma,
        )

    def enumerate(self) -> pd.DataFrame:
        """Every distinct configuration, one row each (columns of :class:`DraftConfig`).

        Points that derive the same draft (a KV group larger than the head count) appear once.
        """
        depth = np.arange(self.depth_min, self.depth_max + 1)
        hidden = np.arange(self.hidden_min, self.hidden_max + 1, self.hidden_step)
        gamma = np.arange(self.gamma_min, self.gamma_max + 1)
        rows = []
        for h in hidden:
            for hd in self.head_dims:
                heads = int(h) // hd
                for g in self.kv_group_sizes:
                    kv = _kv_heads(heads, g)
                    for m in self.ffn_multipliers:
                        rows.append((int(h), _ffn(int(h), m), heads, kv))
        widths = pd.DataFrame(
            rows, columns=["hidden", "ffn", "heads", "kv_heads"]
        ).drop_duplicates()
        grid = widths.merge(pd.DataFrame({"depth": depth}), how="cross").merge(
            pd.DataFrame({"gamma": gamma}), how="cross"
        )
        cols = ["depth", "hidden", "ffn", "heads", "kv_heads", "gamma"]
        return grid[cols].sort_values(cols).reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _pairs(data: Mapping[str, Any], label: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("depth", "hidden", "gamma"):
            if not (isinstance(value, list) and len(value) == 2):
                raise ValueError(
                    f"`{key} = [min, max]` must hold in {label!r}, but got {key}={value!r}."
                )
            out[f"{key}_min"], out[f"{key}_max"] = (int(v) for v in value)
        else:
            out[key] = value
    return out


def suggest_config(trial: optuna.trial.BaseTrial, space: SearchSpace | None = None) -> DraftConfig:
    """Build a draft configuration from an Optuna trial.

    Parameters
    ----------
    trial : optuna.trial.BaseTrial
        Suggests ``depth``, ``hidden``, ``head_dim``, ``kv_group``, ``ffn_multiplier``, ``gamma``.
    space : SearchSpace, optional
        The bounds (default: :class:`SearchSpace`'s defaults).

    Returns
    -------
    DraftConfig
        Always a valid shape: heads and KV heads are derived, never suggested independently.
    """
    space = space or SearchSpace()
    depth = trial.suggest_int("depth", space.depth_min, space.depth_max)
    hidden = trial.suggest_int("hidden", space.hidden_min, space.hidden_max, step=space.hidden_step)
    head_dim = trial.suggest_categorical("head_dim", space.head_dims)
    kv_group = trial.suggest_categorical("kv_group", space.kv_group_sizes)
    ffn_multiplier = trial.suggest_categorical("ffn_multiplier", space.ffn_multipliers)
    gamma = trial.suggest_int("gamma", space.gamma_min, space.gamma_max)
    return space.config(
        depth=depth,
        hidden=hidden,
        head_dim=head_dim,
        kv_group=kv_group,
        ffn_multiplier=ffn_multiplier,
        gamma=gamma,
    )
