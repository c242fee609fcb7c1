"""Times the real HF model's forward pass at several depths, with one copy of the weights.

The depth-differencing harness of :func:`profiler.layers.profile_model`: :class:`HFForwardTimer`
builds the model once at the deepest depth asked for, runs a depth-d pass on its first d layers,
times the depths round-robin with :func:`profiler.timing.time_callable` (KV cache filled with
random keys/values and cropped back to n in the untimed ``setup`` hook), and checks the logits
and cache growth before timing. :class:`Measure` is the interface :func:`profile_model` calls,
so tests can inject a synthetic timer; :class:`DepthTiming` adds process CPU-time samples.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from profiler.build import ModelRecipe, _cycle, build_model
from profiler.timing import TimingResult, time_callable

__all__ = ["MAX_REPEATS", "DepthTiming", "HFForwardTimer", "Measure"]

# Most timed calls per depth and point that ``min_time_ms`` may ask for.
MAX_REPEATS = 200


class Measure(Protocol):
    """Times one forward pass at each depth in ``depths``, interleaved; returns depth -> result."""

    def __call__(
        self, *, depths: Sequence[int], batch: int, context: int, query: int
    ) -> dict[int, TimingResult]: ...


@dataclass(frozen=True)
class DepthTiming(TimingResult):
    """Wall-clock samples (``samples_ms``) plus process CPU-time samples of the same calls.

    On a CPU with one torch thread the process CPU time of a call is its latency without the
    time other processes held the core: the uncontended latency on a shared machine (measured
    here with a spread of ~3% at a load average of 8 on 2 cores, where wall time was 3-4x longer
    and noisy). Empty on CUDA and with more than one thread, where it is not a latency.
    """

    cpu_samples_ms: tuple[float, ...] = ()


class HFForwardTimer:
    """Times the real HF model at several depths, interleaved, with one copy of the weights.

    The model is built once at the deepest depth asked for; a depth-d pass runs its first d
    layers (the layer list is swapped for its first d entries and ``num_hidden_layers`` set to d).
    The depths are timed round-robin, one call (``block`` calls) each per round, so a change in
    the machine's load (the CPU is shared) hits every depth alike instead of biasing the
    difference between them.
    Each depth has its own KV cache, filled with random keys/values and cropped back to n in the
    untimed ``setup`` hook before every call.

    Parameters
    ----------
    recipe : ModelRecipe
        What to build.
    device : str
        ``"cpu"`` or ``"cuda[:i]"``.
    dtype : {"fp32", "bf16", "fp16"}
        Parameter and cache dtype.
    repeats, warmup : int
        Timed calls per depth and untimed calls per depth before them.
    min_time_ms : float
        More rounds after ``repeats`` until the timed calls of a point add up to this many ms
        (each depth the same number of calls, at most :data:`MAX_REPEATS`); 0: ``repeats``.
    block : int
        Calls per depth and round, back to back, after one untimed call (1: one timed call per
        depth and round, no untimed one). Round-robin over depths keeps the machine's drift off
        the depth difference, but makes each pass follow another depth's; on a CPU what ran
        before matters for a model small enough to stay in the last-level cache (zoo-w256's
        one-layer pass took 0.70-0.82x the time back to back, ``block=5``, as round-robin with
        depths 2, 4 and 12; benchmarks/bench_depth_context.py, data/README.md). With
        ``block > 1`` the timed calls are passes run back to back, as a draft runs its γ passes.
    flush_bytes : int
        Bytes of a buffer streamed through the caches (read and written once) in the untimed
        setup before every call (0: none). Each pass then starts with the model's weights
        evicted from the last-level cache, whatever ran before it: the state of a draft's first
        pass after the target's verification pass, and of the GEMM table's cold products.
    """

    def __init__(
        self,
        recipe: ModelRecipe,
        *,
        device: str,
        dtype: str,
        repeats: int,
        warmup: int,
        min_time_ms: float = 0.0,
        block: int = 1,
        flush_bytes: int = 0,
    ) -> None:
        if flush_bytes < 0:
            raise ValueError(f"`flush_bytes >= 0` must hold, but got {flush_bytes=}.")
        self.recipe, self.device, self.dtype = recipe, device, dtype
        self.repeats, self.warmup, self.min_time_ms = repeats, warmup, min_time_ms
        self.block, self.flush_bytes = block, flush_bytes
        self.flushes = 0  # setup flushes done (tests count them)
        self._depth: int | None = None
        self._model: Any = None
        self._layers: Any = None
        self._owner: Any = None
        self._attr = ""
        self._shapes: dict[int, list[tuple[tuple[int, ...], tuple[int, ...]]]] = {}

    def close(self) -> None:
        """Free the model (and the accelerator's cached blocks)."""
        self._model = self._layers = self._owner = None
        self._depth = None
        self._shapes = {}
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def _ensure(self, depth: int) -> Any:
        if self._depth is None or self._depth < depth:
            self.close()
            self._model = build_model(
                self.recipe, layers=depth, dtype=self.dtype, device=self.device
            )
            self._owner, self._attr, self._layers = _layer_list(self._model)
            self._depth = depth
        return self._model

    def _set_depth(self, depth: int) -> None:
        import torch

        setattr(self._owner, self._attr, torch.nn.ModuleList(list(self._layers)[:depth]))
        self._model.config.num_hidden_layers = depth
        full_types = getattr(self.recipe.config, "layer_types", None)
        if full_types:
            self._model.config.layer_types = _cycle(list(full_types), depth)

    def _filled_cache(self, batch: int, context: int, depth: int, kw: str) -> Any:
        import torch
        from transformers import DynamicCache

        cache = DynamicCache(config=self._model.config)
        if context == 0:
            return _crop_ready(cache)
        gen = torch.Generator(device=self.device).manual_seed(0)

        def random(shape: tuple[int, ...]) -> Any:  # (batch, kv_heads, context, head_dim)
            return torch.randn(
                batch,
                shape[1],
                context,
                shape[3],
                generator=gen,
                device=self.device,
                dtype=self._model.dtype,
            )

        for i, (kshape, vshape) in enumerate(self._cache_shapes(kw, depth)):
            k = random(kshape)  # values do not matter: keys serve as values where shapes agree
            cache.update(k, k.clone() if vshape == kshape else random(vshape), i)
        return _crop_ready(cache)

    def _cache_shapes(self, kw: str, depth: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """Per layer of the model at ``depth`` (the current one), the shapes of the keys and
        values one token leaves in the cache, from a real one-token pass (once per depth): what
        the config's names would say is not always what a model caches (Falcon-7B's multi-query
        attention caches one head of its heads; a ``head_dim`` apart from hidden / heads; values
        narrower than keys)."""
        import torch
        from transformers import DynamicCache

        if depth in self._shapes:
            return self._shapes[depth]

        probe = DynamicCache(config=self._model.config)
        ids = torch.zeros(1, 1, dtype=torch.long, device=self.device)
        self._model(input_ids=ids, use_cache=True, **{kw: probe})
        shapes = []
        for layer in probe.layers:
            kshape, vshape = tuple(layer.keys.shape), tuple(layer.values.shape)
            if len(kshape) != 4 or len(vshape) != 4:
                raise ValueError(
                    "`the KV cache holds (batch, heads, tokens, head_dim) tensors` must hold to "
                    f"profile {self.recipe.name} with context > 0, but its keys are {kshape}."
                )
            shapes.append((kshape, vshape))
        self._shapes[depth] = shapes
        return shapes

    def __call__(
        self, *, depths: Sequence[int], batch: int, context: int, query: int
    ) -> dict[int, TimingResult]:
        import torch

        from profiler.kvcache import cache_keyword

        model = self._ensure(max(depths))
        kw = cache_keyword(model)
        vocab = model.config.vocab_size
        gen = torch.Generator().manual_seed(1)
        ids = torch.randint(vocab, (batch, query), generator=gen).to(self.device)
        samples: dict[int, list[float]] = {d: [] for d in depths}
        flush = (
            torch.zeros(self.flush_bytes // 4, dtype=torch.float32, device=self.device)
            if self.flush_bytes
            else None
        )
        with torch.inference_mode():
            caches = {}
            for d in depths:
                self._set_depth(d)
                caches[d] = self._filled_cache(batch, context, d, kw)
                self._check(caches[d], ids, kw, batch=batch, context=context, query=query)
            # process CPU time of each call, read around the forward pass itself
            cpu_ms: dict[int, list[float]] = {d: [] for d in depths}
            r = 0
            while min(len(s) for s in samples.values()) < self._target(samples):
                # round-robin over depths; reverse every other round so no depth always goes first
                for d in depths if r % 2 == 0 else list(reversed(depths)):
                    self._set_depth(d)
                    cache = caches[d]

                    def crop(cache: Any = cache) -> None:
                        extra = cache.get_seq_length() - context
                        if extra > 0:
                            cache.crop(-extra)
                        if flush is not None:
                            flush.add_(1.0)  # read and write every byte: evicts the model
                            self.flushes += 1

                    def forward(cache: Any = cache, d: int = d) -> Any:
                        c0 = time.process_time_ns()
                        out = model(input_ids=ids, use_cache=True, **{kw: cache})
                        cpu_ms[d].append((time.process_time_ns() - c0) / 1e6)
                        return out

                    # blocks start with an untimed call, the first round's too (warmup=0)
                    first = 1 if self.block > 1 else 0
                    warm = max(self.warmup, first) if r == 0 else first
                    n0 = len(cpu_ms[d])
                    res = time_callable(
                        forward, device=self.device, warmup=warm, repeats=self.block, setup=crop
                    )
                    samples[d].extend(res.samples_ms)
                    del cpu_ms[d][n0 : n0 + warm]  # the untimed calls' CPU times
                r += 1
            self._set_depth(self._depth)
        keep_cpu = self.device == "cpu" and torch.get_num_threads() == 1
        return {
            d: DepthTiming(tuple(s), cpu_samples_ms=tuple(cpu_ms[d]) if keep_cpu else ())
            for d, s in samples.items()
        }

    def _target(self, samples: dict[int, list[float]]) -> int:
        """Timed calls per depth to reach: ``repeats``, or more until ``min_time_ms``."""
        done = min(len(s) for s in samples.values())
        if self.min_time_ms <= 0 or done == 0:
            return self.repeats
        per_call_ms = sum(sum(s) for s in samples.values()) / done  # one call of every depth
        need = int(np.ceil(self.min_time_ms / max(per_call_ms, 1e-9)))
        return int(min(max(self.repeats, need), max(MAX_REPEATS, self.repeats)))

    def _check(
        self, cache: Any, ids: Any, kw: str, *, batch: int, context: int, query: int
    ) -> None:
        """Check what is timed before timing it: right logits shape, finite, cache grown by q.
        ``kw``: the keyword the model takes its cache by (:func:`profiler.kvcache.cache_keyword`)."""
        import torch

        vocab = self._model.config.vocab_size
        logits = self._model(input_ids=ids, use_cache=True, **{kw: cache}).logits
        finite = bool(torch.isfinite(logits).all())
        if tuple(logits.shape) != (batch, query, vocab) or not finite:
            raise RuntimeError(
                f"forward pass gave logits of shape {tuple(logits.shape)} (finite: {finite}), "
                f"expected {(batch, query, vocab)}."
            )
        if cache.get_seq_length() != context + query:
            raise RuntimeError(
                f"KV cache holds {cache.get_seq_length()} tokens after the pass, expected "
                f"{context + query}."
            )


def _crop_ready(cache: Any) -> Any:
    """``cache`` with its sliding-window layers recording past states, so the timed pass's
    columns can be cropped after it even once the window is full (a sliding layer refuses that
    crop otherwise); the pass still attends to a window's worth, as in decoding."""
    for layer in cache.layers:
        if getattr(layer, "is_sliding", False):
            layer.activate_past_recording()
    return cache


def _layer_list(model: Any) -> tuple[Any, str, Any]:
    """(owner module, attribute name, ModuleList) of the decoder layers: the ModuleList whose
    length is ``num_hidden_layers`` (``model.layers`` in llama, ``model.decoder.layers`` in OPT,
    ``transformer.h`` in GPT-2)."""
    import torch

    want = model.config.num_hidden_layers
    for _, module in model.named_modules():
        for attr, child in module.named_children():
            if isinstance(child, torch.nn.ModuleList) and len(child) == want:
                return module, attr, child
    raise ValueError(
        f"cannot find the decoder layer list (a ModuleList of {want}) in {type(model).__name__}."
    )
