"""What a draft configuration is worth: predicted speculative tokens/s and its cost.

:func:`predict_configs` scores many configurations at once through ``perfmodel``: the draft's
α from an acceptance source (a fitted model, a fixed α, a measured file), the draft's forward
time from a latency provider (architecture -> latency function), the target's from its latency
function, and :func:`perfmodel.speculative_throughput` for the step. The exhaustive grid and the
Optuna objective both call it, so they agree on every configuration by construction.

:class:`Objective` is the thin Optuna objective: ``suggest_config`` -> ``predict_configs`` ->
constraints through ``trial.set_constraint`` (Optuna 5's mechanism; a value > 0 is a
violation) and the predictions as user attributes (what optuna-dashboard shows) -> the
objective values. It does no other I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from explorer.space import DraftConfig, SearchSpace, suggest_config
from perfmodel.acceptance_model import AcceptanceModel, AcceptanceSource
from perfmodel.arch import ArchSpec
from perfmodel.hardware import HardwareSpec
from perfmodel.latency_fn import LatencyFn
from perfmodel.roofline import roofline
from perfmodel.throughput import speculative_throughput

if TYPE_CHECKING:
    import optuna

__all__ = [
    "COSTS",
    "CONFIG_COLUMNS",
    "MODES",
    "DraftLatency",
    "Objective",
    "RooflineLatency",
    "SearchProblem",
    "directions",
    "predict_configs",
]

CONFIG_COLUMNS = ("depth", "hidden", "ffn", "heads", "kv_heads", "gamma")
COSTS = ("params", "memory_bytes")
MODES = ("single", "multi")

# A latency provider: the latency function T(b, n, q) in ms of a model with this architecture.
DraftLatency = Callable[[ArchSpec], LatencyFn]


@dataclass(frozen=True)
class RooflineLatency:
    """Latency provider from the roofline lower bound (``perfmodel.roofline``).

    A stand-in for a fitted latency model (tests, quick what-ifs): T(b, n, q) = the roofline
    bound of ``arch`` on ``hardware`` divided by ``efficiency`` plus ``launch_ms`` per layer.

    Parameters
    ----------
    hardware : HardwareSpec
        Bandwidth and peak FLOP/s.
    dtype : str
        Peak FLOP/s column to use.
    efficiency : float
        Fraction of the bound achieved, in (0, 1].
    layer_launch_ms : float
        Fixed time per layer (kernel launches), ms, >= 0; what makes depth cost more than width.
    """

    hardware: HardwareSpec
    dtype: str = "bf16"
    efficiency: float = 1.0
    layer_launch_ms: float = 0.0

    def __post_init__(self) -> None:
        if not (0 < self.efficiency <= 1):
            raise ValueError(
                f"`0 < efficiency <= 1` must hold, but got efficiency={self.efficiency}."
            )
        if not (self.layer_launch_ms >= 0):
            raise ValueError(
                f"`layer_launch_ms >= 0` must hold, but got layer_launch_ms={self.layer_launch_ms}."
            )

    def __call__(self, arch: ArchSpec) -> LatencyFn:
        return _RooflineFn(self, arch)

    def __reduce__(self):
        # HardwareSpec keeps its FLOP/s table in a read-only mappingproxy, which cannot be
        # pickled; worker processes rebuild the spec from a plain dict.
        hw = self.hardware
        fields = (hw.name, hw.memory_bandwidth_bytes_per_s, dict(hw.peak_flops_per_s), hw.source)
        return (_rebuild_roofline, (fields, self.dtype, self.efficiency, self.layer_launch_ms))


def _rebuild_roofline(fields, dtype, efficiency, layer_launch_ms) -> RooflineLatency:
    return RooflineLatency(HardwareSpec(*fields), dtype, efficiency, layer_launch_ms)


@dataclass(frozen=True)
class _RooflineFn:
    """T(b, n, q) of one architecture under a :class:`RooflineLatency` (picklable)."""

    provider: RooflineLatency
    arch: ArchSpec

    def __call__(self, batch, context, query):
        p, arch = self.provider, self.arch
        r = roofline(arch, p.hardware, batch=batch, context=context, query=query, dtype=p.dtype)
        return np.asarray(r["lower_bound_ms"]) / p.efficiency + arch.layers * p.layer_launch_ms


@dataclass(frozen=True)
class SearchProblem:
    """Everything the objective needs besides the configuration.

    Parameters
    ----------
    target : ArchSpec
        The target model.
    target_latency : LatencyFn
        T_target(b, n, q) in ms.
    draft_latency : callable
        Architecture -> latency function: the draft's T(b, n, q) for a shape never profiled.
    acceptance : AcceptanceSource
        α for a draft shape (:class:`~perfmodel.acceptance_model.AcceptanceModel`,
        :class:`~perfmodel.acceptance_model.FixedAcceptance`).
    batch : int
        b, rows decoded together, >= 1.
    context : int
        n, tokens in the KV cache at which latencies are taken, >= 0.
    overhead_ms : float
        T_overhead per speculative step (sampling, acceptance, rollback), ms, >= 0.
    extra_draft_calls : float
        Draft passes per step beyond γ (the engine's schedule, see ``perfmodel.throughput``).
    training_tokens : float, optional
        Tokens the proposed drafts will be trained on (an acceptance-model feature). Default:
        the largest budget in the acceptance model's table.
    distilled : bool
        Whether the proposed drafts will be distilled from the target.
    cost : {"params", "memory_bytes"}
        Second objective in multi mode: draft parameters, or draft weights plus its KV cache.
    max_params, max_memory_bytes, max_draft_ms : float, optional
        Budgets; a configuration over one is infeasible (Optuna constraint > 0).
    """

    target: ArchSpec
    target_latency: LatencyFn
    draft_latency: DraftLatency
    acceptance: AcceptanceSource
    batch: int = 1
    context: int = 128
    overhead_ms: float = 0.0
    extra_draft_calls: float = 0.0
    training_tokens: float | None = None
    distilled: bool = True
    cost: str = "params"
    max_params: float | None = None
    max_memory_bytes: float | None = None
    max_draft_ms: float | None = None

    def __post_init__(self) -> None:
        if (
            isinstance(self.batch, bool)
            or not isinstance(self.batch, int | np.integer)
            or self.batch < 1
        ):
            raise ValueError(f"`batch` must be an integer >= 1, but got batch={self.batch!r}.")
        if (
            isinstance(self.context, bool)
            or not isinstance(self.context, int | np.integer)
            or self.context < 0
        ):
            raise ValueError(
                f"`context` must be an integer >= 0, but got context={self.context!r}."
            )
        if not (self.overhead_ms >= 0):
            raise ValueError(
                f"`overhead_ms >= 0` must hold, but got overhead_ms={self.overhead_ms!r}."
            )
        if self.cost not in COSTS:
            raise ValueError(f"`cost in {COSTS}` must hold, but got cost={self.cost!r}.")
        for name in ("max_params", "max_memory_bytes", "max_draft_ms", "training_tokens"):
            value = getattr(self, name)
            if value is not None and not (value > 0):
                raise ValueError(f"`{name} > 0` must hold, but got {name}={value!r}.")
        if self.training_tokens is None and isinstance(self.acceptance, AcceptanceModel):
            tokens = float(self.acceptance.table["training_tokens"].max())
            object.__setattr__(self, "training_tokens", tokens)

    @property
    def constraint_names(self) -> tuple[str, ...]:
        names = []
        if self.max_params is not None:
            names.append("params_over_budget")
        if self.max_memory_bytes is not None:
            names.append("memory_over_budget")
        if self.max_draft_ms is not None:
            names.append("draft_ms_over_max")
        return tuple(names)


def _as_frame(configs: pd.DataFrame | Iterable[DraftConfig]) -> pd.DataFrame:
    if isinstance(configs, pd.DataFrame):
        missing = [c for c in CONFIG_COLUMNS if c not in configs]
        if missing:
            raise ValueError(
                f"`configs has columns {list(CONFIG_COLUMNS)}` must hold, but {missing} are missing."
            )
        return configs.reset_index(drop=True)
    return pd.DataFrame([c.to_dict() for c in configs], columns=list(CONFIG_COLUMNS))


def predict_configs(
    problem: SearchProblem, configs: pd.DataFrame | Sequence[DraftConfig]
) -> pd.DataFrame:
    """Predicted throughput, speedup, cost and constraint values of draft configurations.

    Parameters
    ----------
    problem : SearchProblem
        Target, latencies, acceptance source, budgets.
    configs : DataFrame or sequence of DraftConfig
        One row per configuration with the :data:`CONFIG_COLUMNS`.

    Returns
    -------
    DataFrame
        The configuration columns and: ``params`` (count), ``memory_bytes`` (draft weights plus
        its KV cache at b, n + γ + 1), ``acceptance_rate`` (α, the median prediction),
        ``acceptance_lower``/``acceptance_upper`` (its interval), ``expected_tokens_per_step``
        (E[τ]), ``draft_ms`` (γ draft passes), ``draft_pass_ms`` (one), ``verify_ms``,
        ``overhead_ms``, ``step_ms``, ``target_ms`` (T_target(b, n, 1)), ``tokens_per_s``,
        ``baseline_tokens_per_s``, ``speedup``, ``speedup_lower``/``speedup_upper`` (at the
        interval's ends of α), ``cost``, one column per constraint (> 0: violated) and
        ``feasible``.

    Notes
    -----
    Draft latencies are asked once per distinct architecture (depth x width), at (b, n, 1); α
    once for all rows, vectorised. The throughput is :func:`perfmodel.speculative_throughput`
    on the arrays: tokens/s = 1000·b·E[τ] / (γ·T_draft + T_target(b, n, γ + 1) + overhead).
    """
    df = _as_frame(configs).copy()
    if df.empty:
        raise ValueError("`at least one configuration` must hold, but got none.")
    target = problem.target
    shapes = df[["depth", "hidden", "ffn", "heads", "kv_heads"]].drop_duplicates()
    params, kv_bytes, pass_ms = {}, {}, {}
    for row in shapes.itertuples(index=False):
        key = tuple(int(v) for v in row)
        arch = DraftConfig(*key, gamma=1).arch(target)
        params[key] = arch.param_count
        kv_bytes[key] = arch.kv_cache_bytes_per_token
        pass_ms[key] = float(
            np.asarray(problem.draft_latency(arch)(problem.batch, problem.context, 1))
        )
    keys = list(
        zip(
            *(df[c].astype(int) for c in ("depth", "hidden", "ffn", "heads", "kv_heads")),
            strict=True,
        )
    )
    gamma = df["gamma"].to_numpy(np.int64)
    df["params"] = np.array([params[k] for k in keys], dtype=np.float64)
    df["memory_bytes"] = df["params"] * target.bytes_per_param + np.array(
        [kv_bytes[k] for k in keys]
    ) * problem.batch * (problem.context + gamma + 1)
    draft_pass = np.array([pass_ms[k] for k in keys])

    pred = problem.acceptance.predict(
        params=df["params"].to_numpy(),
        depth=df["depth"].to_numpy(float),
        hidden=df["hidden"].to_numpy(float),
        training_tokens=np.full(len(df), problem.training_tokens or 1.0),
        distilled=np.full(len(df), float(problem.distilled)),
    )
    alpha = pred.acceptance_rate
    common = dict(
        draft_ms=draft_pass,
        target_ms=problem.target_latency,
        overhead_ms=problem.overhead_ms,
        batch=problem.batch,
        context=problem.context,
        extra_draft_calls=problem.extra_draft_calls,
    )
    if pred.position_acceptance is not None:
        pos = _pad_positions(pred.position_acceptance, int(gamma.max()))
        r = speculative_throughput(gamma, position_acceptance=pos, **common)
    else:
        r = speculative_throughput(gamma, acceptance_rate=alpha, **common)
    lo = speculative_throughput(gamma, acceptance_rate=pred.lower, **common)["speedup"]
    hi = speculative_throughput(gamma, acceptance_rate=pred.upper, **common)["speedup"]
    df["acceptance_rate"] = alpha
    df["acceptance_lower"] = pred.lower
    df["acceptance_upper"] = pred.upper
    df["draft_pass_ms"] = draft_pass
    df["target_ms"] = 1000.0 * problem.batch / np.asarray(r["baseline_tokens_per_s"])
    for key in ("expected_tokens_per_step", "draft_ms", "verify_ms", "overhead_ms", "step_ms"):
        df[key] = np.broadcast_to(np.asarray(r[key], dtype=np.float64), len(df))
    for key in ("tokens_per_s", "baseline_tokens_per_s", "speedup"):
        df[key] = np.broadcast_to(np.asarray(r[key], dtype=np.float64), len(df))
    if pred.position_acceptance is None:
        df["speedup_lower"], df["speedup_upper"] = lo, hi
    else:  # the interval is on the scalar α; keep it for what it is
        df["speedup_lower"] = np.minimum(lo, df["speedup"])
        df["speedup_upper"] = np.maximum(hi, df["speedup"])
    df["cost"] = df[problem.cost]
    feasible = np.ones(len(df), dtype=bool)
    if problem.max_params is not None:
        df["params_over_budget"] = df["params"] / problem.max_params - 1.0
    if problem.max_memory_bytes is not None:
        df["memory_over_budget"] = df["memory_bytes"] / problem.max_memory_bytes - 1.0
    if problem.max_draft_ms is not None:
        df["draft_ms_over_max"] = df["draft_pass_ms"] / problem.max_draft_ms - 1.0
    for name in problem.constraint_names:
        feasible &= df[name].to_numpy() <= 0
    df["feasible"] = feasible
    return df


def _pad_positions(position_acceptance: np.ndarray, gamma_max: int) -> np.ndarray:
    # positions beyond the measured ones repeat the last measured α_i
    m = position_acceptance.shape[-1]
    if m >= gamma_max:
        return position_acceptance
    tail = np.repeat(position_acceptance[..., -1:], gamma_max - m, axis=-1)
    return np.concatenate([position_acceptance, tail], axis=-1)


def directions(mode: str) -> list[str]:
    """Optuna study directions: tokens/s up; in multi mode also the cost down."""
    if mode not in MODES:
        raise ValueError(f"`mode in {MODES}` must hold, but got mode={mode!r}.")
    return ["maximize"] if mode == "single" else ["maximize", "minimize"]


# User attributes each trial carries (predictions, so optuna-dashboard shows them as they are).
PREDICTION_ATTRS = (
    "params",
    "memory_bytes",
    "acceptance_rate",
    "acceptance_lower",
    "acceptance_upper",
    "expected_tokens_per_step",
    "draft_pass_ms",
    "draft_ms",
    "verify_ms",
    "overhead_ms",
    "step_ms",
    "target_ms",
    "tokens_per_s",
    "baseline_tokens_per_s",
    "speedup",
    "speedup_lower",
    "speedup_upper",
)


@dataclass(frozen=True)
class Objective:
    """The Optuna objective: a trial -> predicted tokens/s (and the cost in multi mode).

    Picklable (worker processes receive it whole). Constraints are set with
    ``trial.set_constraint`` before returning, so the sampler and ``study.best_trial(s)``
    see them.
    """

    problem: SearchProblem
    space: SearchSpace
    mode: str = "single"

    def __post_init__(self) -> None:
        directions(self.mode)

    def __call__(self, trial: optuna.trial.BaseTrial) -> float | tuple[float, float]:
        config = suggest_config(trial, self.space)
        row = predict_configs(self.problem, [config]).iloc[0]
        for name in self.problem.constraint_names:
            trial.set_constraint(name, float(row[name]))
        for key, value in config.to_dict().items():
            trial.set_user_attr(key, value)
        for key in PREDICTION_ATTRS:
            trial.set_user_attr(key, float(row[key]))
        if self.mode == "single":
            return float(row["tokens_per_s"])
        return float(row["tokens_per_s"]), float(row["cost"])


def trial_row(trial: Any) -> dict[str, Any]:
    """A finished trial's configuration and predictions as one flat dict."""
    attrs = dict(trial.user_attrs)
    row = {"number": trial.number}
    row.update({k: attrs.get(k) for k in CONFIG_COLUMNS})
    row.update({k: attrs.get(k) for k in PREDICTION_ATTRS})
    row["feasible"] = all(v <= 0 for v in trial.constraints.values())
    row.update({k: v for k, v in attrs.items() if k not in row})
    return row
