"""The parts of a search problem, built from the names and files the CLI is given.

- the target architecture from a preset name, a Hugging Face folder or a ``config.json``
  (:func:`resolve_target`);
- the acceptance source: a what-if rate, a measured file, or the model fitted to the drafts of
  ``data/zoo/drafts.csv`` (:func:`build_acceptance`);
- the latency functions: the profiled latency model of a device or the roofline bound of a named
  device (:func:`build_latency`);
- the search space: defaults for the target, a space file, flag bounds (:func:`space_for`);
- a check, before a study starts, that some draft of the space meets the budgets
  (:func:`check_budgets`).

Each builder returns, next to the object, a description for the study settings that
:func:`explorer.search.run_search` stores and checks on resume.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from explorer.space import SearchSpace

__all__ = [
    "DEFAULT_DRAFTS_CSV",
    "build_acceptance",
    "build_latency",
    "check_budgets",
    "profile_notes",
    "resolve_target",
    "space_for",
]

DEFAULT_DRAFTS_CSV = Path(__file__).resolve().parent.parent / "data" / "zoo" / "drafts.csv"


def space_for(
    target: Any, *, space_file: str | os.PathLike[str] | None, **bounds: Any
) -> SearchSpace:
    """The search space: defaults for the target, then a space file, then flag bounds."""
    space = SearchSpace.for_target(target)
    if space_file is not None:
        space = SearchSpace.from_file(space_file, base=space)
    return space.with_overrides(**bounds).check_target(target)


def resolve_target(target: str) -> Any:
    """An ``ArchSpec`` from a preset name, a Hugging Face folder or a ``config.json`` path."""
    from perfmodel.arch import ArchSpec
    from perfmodel.presets import get_preset, preset_names

    path = Path(target)
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise ValueError(
                f"`--target is a preset or a model folder` must hold, but {target!r} has no config.json."
            )
    if path.is_file() and path.suffix == ".json":
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"`{str(path)!r} is valid JSON` must hold, but {exc}.") from None
        return ArchSpec.from_hf_config(config, name=path.parent.name, source=str(path))
    if target in preset_names():
        return get_preset(target)
    raise ValueError(
        f"`--target is a preset ({', '.join(preset_names())}), a model folder or a config.json` must "
        f"hold, but got {target!r}."
    )


def build_acceptance(
    *,
    alpha: float | None = None,
    acceptance: str | None = None,
    drafts_csv: str | os.PathLike[str] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The acceptance source and its description for the study settings.

    ``alpha`` (what-if) wins, then ``acceptance`` (a measured file: one measurement is used as
    it is, a table of several drafts is fitted), then the model fitted to ``drafts_csv``
    (default ``data/zoo/drafts.csv``).
    """
    from perfmodel.acceptance_model import AcceptanceModel, FixedAcceptance, acceptance_from_file

    if alpha is not None:
        return FixedAcceptance(acceptance_rate=alpha), {"kind": "fixed", "acceptance_rate": alpha}
    if acceptance is not None:
        path = Path(acceptance)
        try:
            src = acceptance_from_file(path) if path.is_file() else None
        except ValueError as exc:
            if "holds one measurement" not in str(exc):
                raise
            src = None
        if src is not None:
            return src, {"kind": "file", "path": str(path), "acceptance_rate": src.acceptance_rate}
        model = AcceptanceModel.fit(path)
        return model, {
            "kind": "model",
            "path": str(path),
            "drafts": int(model.table["draft"].nunique()),
        }
    path = Path(drafts_csv) if drafts_csv is not None else DEFAULT_DRAFTS_CSV
    if not path.is_file():
        raise ValueError(
            f"`a table of measured drafts for the acceptance model` must exist, but {str(path)!r} does "
            "not; pass --alpha A (what-if) or --acceptance FILE."
        )
    model = AcceptanceModel.fit(path)
    return model, {
        "kind": "model",
        "path": str(path),
        "drafts": int(model.table["draft"].nunique()),
    }


def build_latency(
    target: Any,
    *,
    device_profile: str | os.PathLike[str] | None = None,
    hardware: str | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Target latency function, draft latency provider and their description.

    ``device_profile`` (a ``data/profiles/<device>/`` folder) fits the profiled latency model
    (``perfmodel.latency_model``); ``hardware`` (a name of ``perfmodel.hardware_names()``) uses
    the roofline bound instead, for a device without profiles.
    """
    if device_profile is not None:
        return _profile_latency(target, Path(device_profile))
    if hardware is not None:
        from explorer.objective import RooflineLatency
        from perfmodel.hardware import get_hardware, hardware_names

        if hardware not in hardware_names():
            raise ValueError(f"`--hardware in {hardware_names()}` must hold, but got {hardware!r}.")
        provider = RooflineLatency(get_hardware(hardware))
        return provider(target), provider, {"kind": "roofline", "hardware": hardware}
    raise ValueError(
        "`--device-profile DIR or --hardware NAME is given` must hold, but got neither."
    )


def _profile_latency(target: Any, folder: Path) -> tuple[Any, Any, dict[str, Any]]:
    from perfmodel.latency_model import LatencyModel

    if not folder.is_dir():
        raise ValueError(
            f"`--device-profile is a folder of profile CSVs` must hold, but {str(folder)!r} is not a folder."
        )
    model = LatencyModel.from_profiles(folder)
    info = {
        "kind": "latency_model",
        "device_profile": str(folder),
        "device": model.device,
        "statistic": model.statistic,
        "target_profiled": model.is_profiled(target),
    }
    return model.latency_fn(target), model.latency_fn, info


def profile_notes(
    latency_provider: Any, spec: Any, role: str, *, batch: int, context: int, queries: Any
) -> list[str]:
    """Notes for a pass of ``spec`` (``role``: "target", "draft") at ``batch``, ``context`` and
    each query length in ``queries`` that lies outside what the device profile measured of its
    shape (the fitted model extrapolates there). ``latency_provider`` is the draft provider
    :func:`build_latency` returned; none without a device profile or for a shape never
    profiled."""
    model = getattr(latency_provider, "__self__", None)  # the fitted LatencyModel, if any
    if not hasattr(model, "outside_profile"):
        return []
    asked: dict[str, int] = {"batch": batch, "context": context}
    outside: dict[str, tuple[int, int]] = {}
    for q in queries:
        out = model.outside_profile(spec, batch=batch, context=context, query=q)
        if "query" in out:
            asked["query"] = q
        outside |= out
    return [
        f"the {role}'s {axis} {asked[axis]} is outside its profiled {axis} {lo}..{hi}: "
        "extrapolated by the fitted model (profile that point to measure it)"
        for axis, (lo, hi) in outside.items()
    ]


def check_budgets(problem: Any, space: SearchSpace) -> None:
    """Raise ``ValueError`` when no draft of the space meets the budgets.

    Parameters, memory and draft time grow with depth and KV cache with γ, so the smallest
    drafts are those at the space's least depth and γ; every width there is scored.
    """
    from explorer.objective import predict_configs

    small = space.with_overrides(depth_max=space.depth_min, gamma_max=space.gamma_min).enumerate()
    scored = predict_configs(problem, small)
    if scored["feasible"].any():
        return
    checks = (
        ("max_params", "params", "params_over_budget", "{:.4g} parameters"),
        ("max_memory_bytes", "memory_bytes", "memory_over_budget", "{:.4g} bytes"),
        ("max_draft_ms", "draft_pass_ms", "draft_ms_over_max", "{:.4g} ms per pass"),
    )
    for budget, column, constraint, unit in checks:
        if constraint in scored and (scored[constraint] > 0).all():
            smallest = scored[column].min()
            raise ValueError(
                f"`{budget} >= the smallest draft of the space` must hold, but the smallest draft "
                f"has {unit.format(smallest)} and {budget}={getattr(problem, budget):.4g}."
            )
    raise ValueError(
        "`some draft of the space meets every budget at once` must hold, but none does."
    )
