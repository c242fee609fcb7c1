"""Stage 1 of `specdec demo`: reuse the committed latency profiles of this CPU, or profile now
what the search needs (the zoo target, drafts with the zoo's vocabulary)."""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from explorer.demo_budget import DemoBudget, _bar

__all__ = ["COMMITTED_PROFILES", "profile_stage"]

COMMITTED_PROFILES = Path(__file__).resolve().parent.parent / "data" / "profiles"


_SLUG = re.compile(r"^(cpu-.+)-(\d+)c$")


def _matching_committed(slug: str) -> tuple[Path | None, int | None]:
    """A committed ``data/profiles/<device>`` of this CPU (any thread count) and its threads."""
    m = _SLUG.match(slug)
    if m is None or not COMMITTED_PROFILES.is_dir():
        folder = COMMITTED_PROFILES / slug
        return (folder, None) if folder.is_dir() else (None, None)
    base, threads = m.group(1), int(m.group(2))
    found = []
    for folder in sorted(COMMITTED_PROFILES.iterdir()):
        mm = _SLUG.match(folder.name)
        if folder.is_dir() and mm and mm.group(1) == base and any(folder.glob("*.csv")):
            found.append((int(mm.group(2)) != threads, int(mm.group(2)), folder))
    if not found:
        return None, None
    _, n, folder = min(found)  # this thread count first
    return folder, n


def _profiled_keys(folder: Path) -> set[tuple]:
    from perfmodel.latency_model import ARCH_KEY, load_profile_rows

    try:
        rows = load_profile_rows(folder)
    except ValueError:
        return set()
    keys = rows[list(ARCH_KEY)].drop_duplicates().itertuples(index=False)
    return {(str(k[0]), *map(int, k[1:6]), bool(k[6])) for k in keys}


def _arch_key(arch: Any) -> tuple:
    return (
        arch.family,
        arch.hidden,
        arch.ffn,
        arch.heads,
        arch.kv_heads,
        arch.vocab,
        bool(arch.tied_embeddings),
    )


def profile_stage(
    *, zoo: Path, out: Path, budget: DemoBudget, progress: bool, echo: Callable[[str], None]
) -> dict[str, Any]:
    """Reuse or make the latency profiles the search needs; return the folder and what was done."""
    import torch

    from explorer import search as s
    from profiler.build import resolve_model
    from profiler.hardware_probe import device_slug, hardware_for
    from profiler.layers import ProfileGrid, profile_model
    from profiler.profile_store import write_profile

    committed, threads = _matching_committed(device_slug("cpu"))
    if threads is not None:
        torch.set_num_threads(threads)
    slug = device_slug("cpu")
    folder = out / "profiles" / slug
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    reused: list[str] = []
    if committed is not None:
        for f in sorted(committed.iterdir()):
            if f.is_file() and (f.suffix == ".csv" or f.name == "hardware.json"):
                shutil.copy2(f, folder / f.name)
                if f.name.endswith(".fit.csv"):
                    reused.append(f.name.removesuffix(".fit.csv"))
        echo(f"profile: reusing {len(reused)} committed profiles of {committed.name} "
             f"(torch threads = {torch.get_num_threads()})")  # fmt: skip
    else:
        echo(f"profile: no committed profile of this CPU ({slug}); profiling now")
    target = s.resolve_target(str(zoo / "target"))
    have = _profiled_keys(folder)
    todo: list[tuple[str, dict[str, int], ProfileGrid]] = []
    q = tuple(sorted({*budget.profile_queries, 1}))
    if _arch_key(target) not in have:
        grid = ProfileGrid(batch=(1,), context=(budget.context,), query=q, depths=(1, 2),
                           whole=target.layers > 2, repeats=budget.profile_repeats)  # fmt: skip
        todo.append(("zoo-target", {}, grid))
    same_vocab = {k for k in have if k[5] == target.vocab and k != _arch_key(target)}
    if len(same_vocab) < 2:
        for w in budget.draft_widths:
            heads = max(1, w // 64)
            shape = {"layers": 2, "hidden": w, "ffn": 64 * math.ceil(8 * w / 3 / 64),
                     "heads": heads, "kv_heads": heads}  # fmt: skip
            grid = ProfileGrid(batch=(1,), context=(budget.context,), query=q, depths=(1, 2),
                               repeats=budget.profile_repeats)  # fmt: skip
            todo.append((f"zoo-draft-w{w}", shape, grid))
    profiled: list[str] = []
    if todo:
        hardware = hardware_for("cpu", cache_dir=folder)
        total = sum(len(g.points()) for _, _, g in todo)
        with _bar(total, "1/4 profile", "pt", progress) as bar:
            for name, shape, grid in todo:
                recipe = resolve_model(str(zoo / "target"), overrides=shape, name=name)

                def tick(label: str, bar: Any = bar, name: str = name) -> None:
                    bar.set_postfix_str(f"{name} {label}", refresh=False)
                    bar.update(1)

                prof = profile_model(recipe, grid=grid, device="cpu", dtype="fp32",
                                     hardware=hardware, progress=tick)  # fmt: skip
                write_profile(prof, folder)
                profiled.append(name)
    else:
        with _bar(1, "1/4 profile", "step", progress) as bar:
            bar.update(1)
    return {
        "device": slug,
        "threads": int(torch.get_num_threads()),
        "folder": str(folder),
        "reused_from": str(committed) if committed is not None else None,
        "reused": reused,
        "profiled": profiled,
    }
