"""A model's KV cache plus a per-row mask of which cache columns hold accepted tokens.

The engine (``profiler.engine``) lets every row's cache grow by the step's new columns, marks the
columns past each row's accepted prefix invalid and crops the trailing columns that no row kept.
While no column is invalid the model runs with Hugging Face's default mask and positions; after
that every pass gets an explicit 4-D mask (causal over columns, restricted to valid ones) and
explicit position ids (each row's count of valid tokens), so an invalid column costs attention
work but never changes a result. ALiBi models that build their biases from a 2-D mask (BLOOM,
Falcon with ``alibi``) get the 2-D mask of valid columns instead; MPT, whose biases count columns
whatever the mask says, runs one row at a time.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from transformers import DynamicCache, PreTrainedModel

__all__ = ["KVStream", "alibi_from_2d_mask", "cache_keyword"]


def alibi_from_2d_mask(config: object) -> bool:
    """Whether the model builds ALiBi biases from a 2-D attention mask (BLOOM, Falcon with
    ``alibi``): such a model must be given the 2-D mask of valid columns, not a 4-D one."""
    kind = getattr(config, "model_type", None)
    return kind == "bloom" or (kind == "falcon" and bool(getattr(config, "alibi", False)))


# Models whose position biases count cache columns whatever the mask says (MPT's ALiBi): a
# column left invalid inside a row would shift every later distance, so they run one row at a
# time (a single row never has such a column: its rollback crops trailing columns).
_COLUMN_POSITIONS = ("mpt",)


def cache_keyword(model: PreTrainedModel) -> str:
    """The keyword ``model.forward`` takes its KV cache by: transformers 5.x renamed
    ``past_key_values`` to ``cache`` (5.17 still spells it ``past_key_values``, 5.24 ``cache``), and
    a keyword the model does not name is swallowed by ``**kwargs``, so the pass runs with no cache.
    """
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class KVStream:
    """One model's KV cache and which of its columns each row may attend to."""

    def __init__(
        self,
        model: PreTrainedModel,
        batch: int,
        device: torch.device,
        *,
        max_columns: int | None = None,
    ) -> None:
        """``max_columns``: the most cache columns the run can reach (None: unknown). A model
        with sliding-window layers runs only where that stays below its window: a sliding
        layer drops old columns once full, and the mask and columns would drift apart; below
        it, the layer keeps every column (Mistral-7B-v0.1's 4096, Gemma 2's local layers)."""
        self.model = model
        self.cache = DynamicCache(config=model.config)
        windows = [
            int(layer.sliding_window)
            for layer in self.cache.layers
            if getattr(layer, "is_sliding", False)
        ]
        if windows and (max_columns is None or max_columns >= min(windows)):
            raise ValueError(
                f"`the run stays inside the sliding window` must hold for {type(model).__name__} "
                f"(window {min(windows)} tokens), but it may need "
                f"{'an unknown number of' if max_columns is None else max_columns} cache columns; "
                "use shorter prompts, fewer new tokens or a smaller batch or gamma."
            )
        kind = getattr(model.config, "model_type", None)
        if kind in _COLUMN_POSITIONS and batch > 1:
            raise ValueError(
                f"`batch == 1` must hold for model_type={kind!r} in the engine (its ALiBi biases "
                "count cache columns, so a row's rolled-back columns would shift them), but got "
                f"batch={batch}; run its prompts one at a time (--batch 1)."
            )
        self.cache_kw = cache_keyword(model)
        # ALiBi models derive their position biases from a 2-D mask (a 4-D one breaks them): a
        # hole is then a padding column, and positions are each row's count of valid columns
        self.mask_2d = alibi_from_2d_mask(model.config)
        self.valid = torch.ones(batch, 0, dtype=torch.bool, device=device)  # (batch, columns)
        self.n_valid = torch.zeros(batch, dtype=torch.long, device=device)  # next position per row
        self.holes = False  # some row has an invalid column: explicit masks from now on
        impl = getattr(model.config, "_attn_implementation", "sdpa")
        self.bool_mask = impl == "sdpa"
        self.impl = impl

    @property
    def columns(self) -> int:
        return self.valid.shape[1]

    def forward(
        self,
        tokens: torch.Tensor,
        new_valid: torch.Tensor,
        *,
        new_holes: bool,
        logits_to_keep: int,
    ) -> torch.Tensor:
        """Feed ``tokens`` (batch, q) as new columns; return logits (batch, kept, vocab)."""
        kwargs: dict[str, object] = {self.cache_kw: self.cache}
        if self.holes or new_holes:
            if self.impl not in ("sdpa", "eager"):
                raise ValueError(
                    "`attn_implementation in ('sdpa', 'eager')` must hold for batches with "
                    f"padding or per-row rollback, but got {self.impl!r}."
                )
            q = tokens.shape[1]
            kv_valid = torch.cat([self.valid, new_valid], dim=1)  # (batch, columns + q)
            if self.mask_2d:
                kwargs["attention_mask"] = kv_valid.long()
            else:
                past = self.columns
                col = torch.arange(past + q, device=tokens.device)
                query_col = col[past:, None]  # (q, 1)
                # causal over columns, restricted to valid columns; a query always sees itself
                # so that a padding query's softmax has something to normalise (its output is
                # unused).
                allowed = (col[None, :] <= query_col) & (kv_valid[:, None, :] | (col == query_col))
                mask = allowed[:, None]  # (batch, 1, q, columns + q)
                if not self.bool_mask:
                    dtype = self.model.dtype
                    zero = torch.zeros((), dtype=dtype, device=tokens.device)
                    mask = torch.where(mask, zero, torch.finfo(dtype).min)
                kwargs["attention_mask"] = mask
                # position of each new column = the row's valid tokens before it
                kwargs["position_ids"] = (
                    self.n_valid[:, None] + new_valid.cumsum(dim=1) - new_valid.long()
                )
            self.holes = True
        out = self.model(input_ids=tokens, use_cache=True, logits_to_keep=logits_to_keep, **kwargs)
        self.valid = torch.cat([self.valid, new_valid], dim=1)
        self.n_valid = self.n_valid + new_valid.sum(dim=1)
        return out.logits

    def rollback(self, *, start: int, keep: torch.Tensor, keep_host: Sequence[int]) -> None:
        """Keep ``keep[r]`` of the (all valid) columns from ``start`` on in row r; crop the rest.

        ``keep_host`` is ``keep`` on the host (already copied for the step's bookkeeping).
        """
        new = self.columns - start
        longest = max(keep_host)
        if longest < new:
            self.cache.crop(-(new - longest))  # negative: remove that many trailing columns
            self.valid = self.valid[:, : start + longest]
        if min(keep_host) < longest:
            kept = torch.arange(longest, device=keep.device)[None, :] < keep[:, None]
            self.valid = torch.cat([self.valid[:, :start], kept], dim=1)
            self.holes = True
        self.n_valid = self.n_valid - new + keep

    def select(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` of the batch (finished rows leave)."""
        self.cache.batch_select_indices(rows)
        self.valid = self.valid[rows]
        self.n_valid = self.n_valid[rows]

    def row_kv(self, row: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys and values of ``row`` at its valid columns, per layer: (heads, tokens, head_dim)."""
        keep = self.valid[row].nonzero().squeeze(1)
        return [
            (layer.keys[row][:, keep], layer.values[row][:, keep]) for layer in self.cache.layers
        ]
