"""Architecture facts of a decoder-only transformer: parameter count, bytes, KV cache, FLOPs.

``ArchSpec`` describes the two families the project profiles, as Hugging Face builds them:

- ``"llama"`` (``LlamaForCausalLM``): RMSNorm, rotary positions (no position table), grouped-query
  attention without biases (or with biases on q, k and v: ``qkv_bias``, Qwen2's layout; or with
  RMSNorms of the queries and keys per head: ``qk_norm``, Qwen3's; or with two more RMSNorms per
  layer, on the attention's and the MLP's outputs: ``sandwich_norms``, Gemma 2's and 3's), gated
  MLP (gate, up, down) without biases. Mistral, Qwen2, Qwen3, Phi-3, Gemma, Gemma 2, Gemma 3
  (text), Granite and SmolLM3 configs have this layout (:meth:`ArchSpec.from_hf_config`).
- ``"opt"`` (``OPTForCausalLM``): pre-LayerNorm with weights and biases, a learned position table
  of ``max_positions + 2`` rows (HF's offset of 2), multi-head attention and a two-matrix MLP, all
  with biases. OPT-350m's projection of a smaller embedding (``word_embed_proj_dim``) is not
  modelled. GPT-NeoX (Pythia) and GPT-2 have the same layer parameters and differ only in the
  position table (``position_table_rows``: none for GPT-NeoX's rotary positions,
  ``n_positions`` rows for GPT-2); GPT-NeoX's parallel residual adds no parameter. Starcoder2
  (grouped-query attention, no position table) and GPT-BigCode (StarCoder, SantaCoder:
  multi-query attention, GPT-2's table) have this layer with fewer key/value heads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["FAMILIES", "ArchSpec"]

FAMILIES = ("llama", "opt")

# HF's OPTLearnedPositionalEmbedding allocates max_position_embeddings + 2 rows: positions start
# at 2 because fairseq reserved 0..1 for padding.
_OPT_POSITION_OFFSET = 2

# Hugging Face model types with the llama layer layout (see ArchSpec.from_hf_config).
_LLAMA_LAYOUT = (
    "llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "gemma3_text", "granite",
    "smollm3", "qwen2_vl_text", "qwen2_5_vl_text", "qwen3_vl_text", "mixtral", "qwen2_moe",
    "qwen3_moe", "granitemoe", "gpt_oss", "olmo2", "olmo3", "olmoe",
)  # fmt: skip
_QK_NORM_FULL = ("olmo2", "olmo3", "olmoe")
_QKV_BIAS = ("qwen2", "qwen2_vl_text", "qwen2_5_vl_text", "qwen2_moe")
_QK_NORM = ("qwen3", "gemma3_text", "qwen3_vl_text", "qwen3_moe")
# Mixture-of-experts model types: the config key of one expert's width (the routed experts are
# num_local_experts or num_experts: hub configs and transformers' own name them either way)
_MOE = {
    "mixtral": "intermediate_size",
    "granitemoe": "intermediate_size",
    "gpt_oss": "intermediate_size",
    "olmoe": "intermediate_size",
    "qwen2_moe": "moe_intermediate_size",
    "qwen3_moe": "moe_intermediate_size",
}
# ... and with the OPT layer layout (two-matrix MLP, LayerNorms, biases everywhere).
_OPT_LAYOUT = ("opt", "gpt_neox", "gpt2", "starcoder2", "gpt_bigcode")
_LAYOUTS = (*_LLAMA_LAYOUT, *_OPT_LAYOUT)
# Their config classes' defaults where a config.json leaves a key out.
_TIED_BY_DEFAULT = {
    "gemma", "gemma2", "gemma3_text", "smollm3", "opt", "gpt2", "starcoder2", "gpt_bigcode",
}  # fmt: skip
_HEAD_DIM_256 = {"gemma", "gemma2", "gemma3_text"}


@dataclass(frozen=True)
class ArchSpec:
    """A decoder-only transformer's shape.

    Parameters
    ----------
    layers : int
        Decoder layers L, >= 1.
    hidden : int
        Model width h, >= 1; divisible by ``heads``.
    ffn : int
        MLP inner width, >= 1 (``intermediate_size`` for llama, ``ffn_dim`` for OPT).
    heads : int
        Attention (query) heads, >= 1.
    kv_heads : int
        Key/value heads, >= 1, dividing ``heads`` (grouped-query attention when smaller; in the
        OPT layout only Starcoder2's and GPT-BigCode's, OPT itself has ``kv_heads == heads``).
    vocab : int
        Vocabulary size (rows of the embedding table), >= 1.
    tied_embeddings : bool
        Whether the LM head shares the input embedding matrix.
    family : {"llama", "opt"}
        Layer layout (see the module docstring).
    bytes_per_param : float
        Bytes per stored parameter and per KV-cache element (2.0 for bf16/fp16), > 0.
    max_positions : int
        Longest context (``max_position_embeddings``), >= 1; sizes OPT's position table.
    qkv_bias : bool
        Biases on the q, k and v projections (Qwen2), family "llama" only (OPT's biases are
        part of its layout).
    qk_norm : bool
        RMSNorm weights of head_dim on the queries and on the keys of each layer (Qwen3),
        family "llama" only.
    sandwich_norms : bool
        Two more RMSNorm weights per layer, after the attention and after the MLP (Gemma 2 and
        3: four norms per layer), family "llama" only.
    position_table_rows : int, optional
        Rows of the learned position table, family "opt" only: 0 for none (GPT-NeoX), GPT-2's
        ``n_positions``; None (the default) is OPT's ``max_positions + 2``.
    experts : int
        Routed experts of a mixture-of-experts MLP in every layer (Mixtral, Qwen-MoE), family
        "llama" only; 0 (the default) for a dense MLP, else >= 2, and ``ffn`` is one expert's
        width. A router of ``experts x hidden`` picks ``experts_per_token`` of them per token.
    experts_per_token : int
        Experts each token runs (top-k), 1..``experts``; 0 for a dense MLP.
    shared_expert_ffn : int
        Width of an expert every token runs besides its routed ones, with a one-row sigmoid
        gate (Qwen2-MoE); 0 (the default) for none.
    qk_norm_full : bool
        RMSNorm weights over the whole query and key widths (heads·head_dim and
        kv_heads·head_dim) of each layer (OLMo-2, OLMo-3, OLMoE), family "llama" only; not with
        ``qk_norm``.
    out_bias : bool
        A bias on the attention's output projection too (gpt-oss, with ``qkv_bias``), family
        "llama" only.
    attention_sinks : bool
        A learned sink logit per head and layer (gpt-oss), family "llama" only.
    expert_biases : bool
        Biases on the router and on each expert's products (gpt-oss); a mixture of experts
        only.
    head_size : int, optional
        Width of one attention head where it is not ``hidden / heads`` (Qwen3-0.6B: 128 at
        hidden 1024 and 16 heads; gemma-7b: 256), family "llama" only; None (the default)
        derives it. ``head_dim`` is the width in use either way.
    name : str, optional
        Display name, e.g. the preset's.
    source : str, optional
        Where the numbers come from (a hub id, a config.json path).

    Examples
    --------
    >>> spec = ArchSpec(layers=32, hidden=4096, ffn=11008, heads=32, kv_heads=32, vocab=32000,
    ...                 tied_embeddings=False, family="llama")
    >>> spec.param_count
    6738415616
    >>> spec.head_dim, spec.kv_cache_bytes_per_token
    (128, 524288.0)
    """

    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool
    family: str
    bytes_per_param: float = 2.0
    max_positions: int = 2048
    name: str | None = None
    source: str | None = None
    qkv_bias: bool = False
    qk_norm: bool = False
    head_size: int | None = None
    sandwich_norms: bool = False
    position_table_rows: int | None = None
    experts: int = 0
    experts_per_token: int = 0
    shared_expert_ffn: int = 0
    qk_norm_full: bool = False
    out_bias: bool = False
    attention_sinks: bool = False
    expert_biases: bool = False
    head_dim: int = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for field in ("layers", "hidden", "ffn", "heads", "kv_heads", "vocab", "max_positions"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"`{field}` must be an integer >= 1, but got {field}={value!r}.")
        if not isinstance(self.tied_embeddings, bool | np.bool_):
            raise ValueError(
                f"`tied_embeddings` must be a bool, but got tied_embeddings={self.tied_embeddings!r}."
            )
        for flag in ("qkv_bias", "qk_norm", "sandwich_norms", "out_bias", "attention_sinks",
                     "expert_biases", "qk_norm_full"):  # fmt: skip
            value = getattr(self, flag)
            if not isinstance(value, bool | np.bool_):
                raise ValueError(f"`{flag}` must be a bool, but got {flag}={value!r}.")
            if value and self.family != "llama":
                raise ValueError(
                    f"`{flag}` must be False unless family='llama' (OPT's layout is fixed), but "
                    f"got family={self.family!r}."
                )
        if self.family not in FAMILIES:
            raise ValueError(f"`family in {FAMILIES}` must hold, but got family={self.family!r}.")
        rows = self.position_table_rows
        if rows is not None:
            if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or rows < 0:
                raise ValueError(
                    "`position_table_rows` must be an integer >= 0, but got "
                    f"position_table_rows={rows!r}."
                )
            if self.family != "opt":
                raise ValueError(
                    "`position_table_rows` must be None unless family='opt' (llama has rotary "
                    f"positions), but got family={self.family!r}."
                )
        self._check_experts()
        size = self.head_size
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
                raise ValueError(
                    f"`head_size` must be an integer >= 1, but got head_size={size!r}."
                )
            if self.family != "llama":
                raise ValueError(
                    "`head_size` must be None unless family='llama', but got "
                    f"family={self.family!r}."
                )
        elif self.hidden % self.heads:
            raise ValueError(
                "`hidden % heads == 0` must hold, but got "
                f"hidden={self.hidden} and heads={self.heads}."
            )
        if self.heads % self.kv_heads:
            raise ValueError(
                "`heads % kv_heads == 0` must hold, but got "
                f"heads={self.heads} and kv_heads={self.kv_heads}."
            )
        bpp = self.bytes_per_param
        if isinstance(bpp, bool) or not isinstance(bpp, int | float) or not 0 < bpp < float("inf"):
            raise ValueError(f"`bytes_per_param > 0` must hold, but got bytes_per_param={bpp!r}.")
        object.__setattr__(self, "head_dim", int(size) if size else self.hidden // self.heads)

    def _check_experts(self) -> None:
        for field in ("experts", "experts_per_token", "shared_expert_ffn"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"`{field}` must be an integer >= 0, but got {field}={value!r}.")
        if self.qk_norm and self.qk_norm_full:
            raise ValueError(
                "`not (qk_norm and qk_norm_full)` must hold (per-head or full-width q/k norms), "
                "but got both True."
            )
        e, k = self.experts, self.experts_per_token
        if e == 0 and self.expert_biases:
            raise ValueError(
                "`expert_biases` must be False for a dense MLP (experts=0), but got "
                "expert_biases=True."
            )
        if e == 0:
            if k or self.shared_expert_ffn:
                raise ValueError(
                    "`experts_per_token == 0 and shared_expert_ffn == 0` must hold for a dense "
                    f"MLP (experts=0), but got experts_per_token={k} and "
                    f"shared_expert_ffn={self.shared_expert_ffn}."
                )
            return
        if self.family != "llama":
            raise ValueError(
                f"`experts == 0` must hold unless family='llama', but got family={self.family!r}."
            )
        if e < 2 or not 1 <= k <= e:
            raise ValueError(
                "`experts >= 2 and 1 <= experts_per_token <= experts` must hold for a "
                f"mixture-of-experts MLP, but got experts={e} and experts_per_token={k}."
            )

    # --- parameter counts -------------------------------------------------------------------------

    @property
    def layer_param_count(self) -> int:
        """Parameters of one decoder layer (attention, MLP, norms, and biases for OPT)."""
        h, kv, qd = self.hidden, self.kv_heads * self.head_dim, self.query_width
        # q, o: (h, heads·head_dim); k, v: (h, kv_heads·head_dim)
        attention = 2 * h * qd + 2 * h * kv
        if self.family == "llama":
            mlp = self._mlp_params(self.experts)  # gate, up, down (per expert, router)
            norms = (4 if self.sandwich_norms else 2) * h  # RMSNorm weights
            biases = qd + 2 * kv if self.qkv_bias else 0  # q, k, v biases (Qwen2)
            biases += h if self.out_bias else 0  # o bias (gpt-oss)
            biases += self.heads if self.attention_sinks else 0  # a sink per head (gpt-oss)
            qk_norms = 2 * self.head_dim if self.qk_norm else 0  # q and k norms per head (Qwen3)
            qk_norms += qd + kv if self.qk_norm_full else 0  # over q's and k's widths (OLMo-2)
            return attention + mlp + norms + biases + qk_norms
        attention += 2 * h + 2 * kv  # q, k, v, out_proj biases
        mlp = 2 * h * self.ffn + self.ffn + h  # fc1, fc2 with biases
        norms = 2 * 2 * h  # two LayerNorms, weight and bias
        return attention + mlp + norms

    def _mlp_params(self, experts: float) -> float:
        """A llama-layout MLP's parameters with ``experts`` of its routed experts (all of them
        for the count, the active or touched ones for FLOPs and bytes read), plus the router and
        a shared expert; a dense MLP's 3·h·ffn."""
        h = self.hidden
        if self.experts == 0:
            return 3 * h * self.ffn
        shared = 3 * h * self.shared_expert_ffn + h if self.shared_expert_ffn else 0
        expert, router = 3 * h * self.ffn, h * self.experts
        if self.expert_biases:  # gate/up and down biases of each expert, the router's
            expert, router = expert + 2 * self.ffn + h, router + self.experts
        return experts * expert + router + shared

    def experts_touched(self, tokens: ArrayLike) -> float | NDArray:
        """Expected distinct experts a layer reads in a pass over ``tokens`` tokens (b·q):
        E·(1 − (1 − k/E)^tokens), each token picking k of E experts at random (0 for a dense
        MLP). Decoding one token reads k experts; verifying γ + 1 tokens reads up to
        (γ + 1)·k, which is what makes a mixture-of-experts target's verification dear."""
        t = np.asarray(tokens, dtype=float)
        if self.experts == 0:
            out = np.zeros_like(t)
        else:
            e, k = float(self.experts), float(self.experts_per_token)
            out = e * (1.0 - (1.0 - k / e) ** t)
        return out.item() if out.ndim == 0 else out

    def layer_params_read(self, tokens: ArrayLike) -> float | NDArray:
        """Parameters one layer reads in a pass over ``tokens`` tokens: all of them for a dense
        layer; for a mixture-of-experts one, the attention, norms, router, shared expert and
        the routed experts the tokens touch (:meth:`experts_touched`)."""
        if self.experts == 0:
            out = np.full(np.shape(tokens), float(self.layer_param_count))
        else:
            touched = self._mlp_params(np.asarray(self.experts_touched(tokens)))
            out = self.layer_param_count - (self._mlp_params(self.experts) - touched)
        return out.item() if out.ndim == 0 else out

    @property
    def position_rows(self) -> int:
        """Rows of the learned position table: ``position_table_rows``, else OPT's
        ``max_positions + 2``; 0 for llama (rotary positions)."""
        if self.family != "opt":
            return 0
        if self.position_table_rows is not None:
            return int(self.position_table_rows)
        return self.max_positions + _OPT_POSITION_OFFSET

    @property
    def embedding_param_count(self) -> int:
        """Input-side tables: token embeddings, plus a learned position table (OPT, GPT-2)."""
        return (self.vocab + self.position_rows) * self.hidden

    @property
    def final_norm_param_count(self) -> int:
        """The norm after the last layer: RMSNorm weight (llama), LayerNorm weight+bias (OPT)."""
        return self.hidden if self.family == "llama" else 2 * self.hidden

    @property
    def lm_head_param_count(self) -> int:
        """Parameters the LM head adds: vocab·hidden, or 0 when tied to the embeddings."""
        return 0 if self.tied_embeddings else self.vocab * self.hidden

    @property
    def fixed_param_count(self) -> int:
        """Parameters outside the decoder layers (the T_fixed part of a depth decomposition)."""
        return self.embedding_param_count + self.final_norm_param_count + self.lm_head_param_count

    @property
    def param_count(self) -> int:
        """Total parameters, counted as ``model.num_parameters()`` counts them in HF.

        Notes
        -----
        N = L·N_layer + N_embed + N_final_norm + N_lm_head (tied weights counted once).

        References
        ----------
        Hugging Face transformers ``modeling_llama.py`` and ``modeling_opt.py``; checked against
        ``num_parameters()`` in ``tests/profiler_tests/test_arch_vs_hf.py``.
        """
        return self.layers * self.layer_param_count + self.fixed_param_count

    @property
    def query_width(self) -> int:
        """heads·head_dim: the width of the queries (``hidden`` unless ``head_size`` is set)."""
        return self.hidden if self.head_size is None else self.heads * self.head_dim

    @property
    def weight_bytes(self) -> float:
        """Bytes of all parameters at ``bytes_per_param``."""
        return self.param_count * self.bytes_per_param

    @property
    def kv_cache_bytes_per_token(self) -> float:
        """KV-cache bytes one token adds in one sequence: 2·L·kv_heads·head_dim·bytes_per_param."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.bytes_per_param

    # --- FLOPs --------------------------------------------------------------------------------------

    @property
    def layer_matmul_params(self) -> int:
        """Weights of one layer that enter a matrix product for one token (no norms, no biases;
        of a mixture of experts, the router and the experts one token runs)."""
        h, kv = self.hidden, self.kv_heads * self.head_dim
        if self.family == "llama":  # a mixture of experts: the k experts a token runs, router
            mlp = self._mlp_params(self.experts_per_token)
        else:
            mlp = 2 * h * self.ffn
        return 2 * h * self.query_width + 2 * h * kv + mlp

    def layer_flops_per_token(self, context: ArrayLike) -> float | NDArray:
        """FLOPs one new token costs in one layer, attending to ``context`` cached tokens.

        Parameters
        ----------
        context : int or array_like
            n, keys/values the token attends to, >= 0.

        Returns
        -------
        float or ndarray
            FLOPs (multiply and add counted as 2).

        Notes
        -----
        2·N_matmul,layer + 4·heads·head_dim·n (4·h·n unless ``head_size`` is set): the weight
        products, plus Q·Kᵀ (2·heads·head_dim·n) and the weighted sum of V (same). Norms,
        softmax, rotary and activations are left out (O(h), not O(h²)).

        References
        ----------
        Kaplan et al., "Scaling Laws for Neural Language Models", 2020, Table 1.
        """
        n = _check_context(context)
        out = 2.0 * self.layer_matmul_params + 4.0 * self.query_width * n
        return out.item() if out.ndim == 0 else out

    @property
    def fixed_flops_per_token(self) -> float:
        """FLOPs per token outside the layers: the LM head product, 2·vocab·hidden (tied or not)."""
        return 2.0 * self.vocab * self.hidden

    def flops_per_token(self, context: ArrayLike) -> float | NDArray:
        """FLOPs of a forward pass per new token at context length n.

        Parameters
        ----------
        context : int or array_like
            n, tokens attended to, >= 0.

        Returns
        -------
        float or ndarray
            FLOPs per token.

        Notes
        -----
        L·(2·N_matmul,layer + 4·h·n) + 2·vocab·h ≈ 2·N + 4·L·h·n; embedding look-ups cost no
        FLOPs.

        References
        ----------
        Kaplan et al. 2020, Table 1; Chinchilla (Hoffmann et al. 2022), Appendix F.

        Examples
        --------
        >>> from perfmodel.presets import get_preset
        >>> f"{get_preset('llama-7b').flops_per_token(0):.3e}"
        '1.321e+10'
        """
        n = _check_context(context)
        out = self.layers * np.asarray(self.layer_flops_per_token(n)) + self.fixed_flops_per_token
        return out.item() if out.ndim == 0 else out

    # --- construction -------------------------------------------------------------------------------

    def replace(self, **overrides: Any) -> ArchSpec:
        """A validated copy with some fields changed (e.g. ``layers=5`` for a shallow draft)."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self) if f.init}
        if unknown:
            raise ValueError(
                f"ArchSpec has no field {sorted(unknown)}; fields: {self._field_names()}."
            )
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """The constructor's fields as a plain dict (``ArchSpec(**spec.to_dict()) == spec``)."""
        return {name: getattr(self, name) for name in self._field_names()}

    @classmethod
    def _field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.init]

    @classmethod
    def from_hf_config(
        cls,
        config: Mapping[str, Any],
        *,
        name: str | None = None,
        source: str | None = None,
        bytes_per_param: float = 2.0,
    ) -> ArchSpec:
        """Build a spec from a Hugging Face ``config.json`` dict.

        ``model_type`` llama, or one with the same layout: mistral, phi3 (fused q/k/v and
        gate/up matrices, the same parameters), gemma (tied embeddings by default), qwen2 (with
        ``qkv_bias``), qwen3 (with ``qk_norm``), gemma2 (with ``sandwich_norms``), gemma3_text
        (with both), granite, smollm3 and the language models of Qwen2-VL and Qwen2.5-VL (as
        qwen2) and Qwen3-VL (as qwen3); or opt, or one with its layer layout: gpt_neox (no
        position table), starcoder2 (no position table, grouped-query), gpt2 (``n_positions``
        rows) and gpt_bigcode (``n_positions`` rows, multi-query). An image-text model whose
        ``text_config`` is one of these (Gemma 3 4B and up, Mistral 3, LLaVA, Qwen2.5-VL) is its
        language model with the LM head tied as the wrapper's ``tie_word_embeddings`` says: what
        a decoding step runs (the vision tower is not counted). A ``head_dim`` other than hidden /
        heads becomes ``head_size``. A sliding window (Mistral, Qwen2, Gemma 2 and 3) is not
        modelled: the attention terms count every cached token. Neither is GPT-NeoX's partial
        rotary or parallel residual, Granite's multipliers or Gemma's soft-capping (none holds
        a parameter).

        olmo2, olmo3 and olmoe (a mixture of experts) have full-width q/k norms
        (``qk_norm_full``; OLMo-3's sliding window is not modelled). gpt_oss is a mixture of
        experts with attention biases (``qkv_bias``, ``out_bias``),
        ``attention_sinks`` and ``expert_biases`` (its alternating 128-token sliding window is
        not modelled). Mixtral, Granite-MoE, Qwen2-MoE and Qwen3-MoE set ``experts``, ``experts_per_token`` and
        ``shared_expert_ffn`` (``ffn`` is then one expert's width).

        Raises ``ValueError`` for other model types, for options the spec does not model
        (attention or MLP biases in llama, OPT's ``word_embed_proj_dim != hidden``, OPT without
        the final LayerNorm, GPT-NeoX without attention biases, Starcoder2 without biases, GPT-2
        or GPT-BigCode with cross-attention, dense layers between a mixture of experts' sparse
        ones), and for a config that lacks a key its model type needs.
        """
        if not isinstance(config, Mapping):
            raise ValueError(
                f"`config is a mapping (a config.json object)` must hold, but got "
                f"{type(config).__name__}."
            )
        text = config.get("text_config")
        if config.get("model_type") not in _LAYOUTS and isinstance(text, Mapping):
            # an image-text model (Gemma 3 4B+, Mistral 3, LLaVA, Qwen2.5-VL): its language
            # model decodes; the wrapper's tying of the LM head governs where it names one
            if text.get("model_type") in _LAYOUTS and "tie_word_embeddings" in config:
                text = {**text, "tie_word_embeddings": config["tie_word_embeddings"]}
            return cls.from_hf_config(
                text, name=name, source=source, bytes_per_param=bytes_per_param
            )
        try:
            return cls._from_hf_config(config, name, source, bytes_per_param)
        except KeyError as exc:
            raise ValueError(
                f"`a {config.get('model_type')} config names {exc.args[0]}` must hold, but "
                "it has no such key."
            ) from None

    @classmethod
    def _from_hf_config(
        cls,
        config: Mapping[str, Any],
        name: str | None,
        source: str | None,
        bytes_per_param: float,
    ) -> ArchSpec:
        kind = config.get("model_type")
        common = {"bytes_per_param": bytes_per_param, "name": name, "source": source}
        tied = bool(config.get("tie_word_embeddings", kind in _TIED_BY_DEFAULT))
        if kind in _LLAMA_LAYOUT:
            hidden, heads = config["hidden_size"], config["num_attention_heads"]
            head_dim = config.get("head_dim", 256 if kind in _HEAD_DIM_256 else None)
            derived = hidden // heads if hidden % heads == 0 else None
            head_size = None if head_dim in (None, derived) else int(head_dim)
            for flag in ("attention_bias", "mlp_bias"):
                if config.get(flag) and kind != "gpt_oss":
                    raise ValueError(
                        f"`{flag}` must be false for an ArchSpec, but got {flag}=True."
                    )
            moe = _moe_fields(kind, config)
            oss_bias = kind == "gpt_oss" and bool(config.get("attention_bias", True))
            return cls(
                layers=config["num_hidden_layers"],
                hidden=hidden,
                ffn=moe.pop("ffn", None) or config["intermediate_size"],
                heads=heads,
                kv_heads=config.get("num_key_value_heads") or heads,
                vocab=config["vocab_size"],
                tied_embeddings=tied,
                family="llama",
                max_positions=config.get("max_position_embeddings", 2048),
                qkv_bias=kind in _QKV_BIAS or oss_bias,
                out_bias=oss_bias,
                attention_sinks=kind == "gpt_oss",
                expert_biases=kind == "gpt_oss",
                qk_norm=kind in _QK_NORM,
                qk_norm_full=kind in _QK_NORM_FULL,
                sandwich_norms=kind in ("gemma2", "gemma3_text"),
                head_size=head_size,
                **moe,
                **common,
            )
        if kind == "opt":
            hidden = config["hidden_size"]
            if config.get("word_embed_proj_dim", hidden) != hidden:
                raise ValueError(
                    "`word_embed_proj_dim == hidden_size` must hold, but got "
                    f"word_embed_proj_dim={config['word_embed_proj_dim']} and hidden_size={hidden}."
                )
            if not config.get("do_layer_norm_before", True) or config.get(
                "_remove_final_layer_norm"
            ):
                raise ValueError(
                    "OPT configs without a final LayerNorm (opt-350m) are not modelled."
                )
        if kind == "gpt_neox" and not config.get("attention_bias", True):
            raise ValueError(
                "`attention_bias` must be true for a gpt_neox ArchSpec (its layout has biases), "
                "but got attention_bias=False."
            )
        if kind in ("gpt2", "gpt_bigcode") and config.get("add_cross_attention"):
            raise ValueError(
                f"`add_cross_attention` must be false for a {kind} ArchSpec (a decoder only), "
                "but got add_cross_attention=True."
            )
        if kind == "starcoder2" and not config.get("use_bias", True):
            raise ValueError(
                "`use_bias` must be true for a starcoder2 ArchSpec (its layout has biases), but "
                "got use_bias=False."
            )
        if kind in _OPT_LAYOUT:
            # OPT's names, GPT-NeoX's (Pythia: rotary, no position table), Starcoder2's (the
            # same, grouped-query), GPT-2's and GPT-BigCode's (GPT-2's, multi-query)
            if kind in ("gpt2", "gpt_bigcode"):
                hidden, heads, layers = config["n_embd"], config["n_head"], config["n_layer"]
                ffn = config.get("n_inner") or 4 * hidden
                positions = rows = config.get("n_positions", 1024)
                kv = 1 if kind == "gpt_bigcode" and config.get("multi_query", True) else heads
            else:
                hidden, heads = config["hidden_size"], config["num_attention_heads"]
                layers = config["num_hidden_layers"]
                ffn = config["ffn_dim" if kind == "opt" else "intermediate_size"]
                positions = config.get("max_position_embeddings", 2048)
                rows = None if kind == "opt" else 0
                kv = config.get("num_key_value_heads") or heads
            return cls(
                layers=layers,
                hidden=hidden,
                ffn=ffn,
                heads=heads,
                kv_heads=kv,
                vocab=config["vocab_size"],
                tied_embeddings=tied,
                family="opt",
                max_positions=positions,
                position_table_rows=rows,
                **common,
            )
        raise ValueError(f"`model_type in {_LAYOUTS}` must hold, but got model_type={kind!r}.")


def _moe_fields(kind: str, config: Mapping[str, Any]) -> dict[str, int]:
    """``experts``, ``experts_per_token``, ``shared_expert_ffn`` and ``ffn`` (one expert's
    width) of a mixture-of-experts config; {} for a dense one. Raises ``ValueError`` for dense
    layers between the sparse ones (Qwen-MoE's ``decoder_sparse_step`` > 1 or
    ``mlp_only_layers``), which the spec's one layer shape does not hold."""
    if kind not in _MOE:
        return {}
    width_key = _MOE[kind]
    experts_key = "num_local_experts" if "num_local_experts" in config else "num_experts"
    step, dense = config.get("decoder_sparse_step", 1), config.get("mlp_only_layers") or []
    if step != 1 or dense:
        raise ValueError(
            "`every layer has the mixture-of-experts MLP` must hold for an ArchSpec, but got "
            f"decoder_sparse_step={step} and mlp_only_layers={dense}."
        )
    return {
        "experts": int(config[experts_key]),
        "experts_per_token": int(config["num_experts_per_tok"]),
        "shared_expert_ffn": int(config.get("shared_expert_intermediate_size") or 0),
        "ffn": int(config[width_key]),
    }


def _check_context(context: ArrayLike) -> NDArray[np.float64]:
    try:
        n = np.asarray(context, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"`context` must be a number of tokens, but got context={context!r}."
        ) from None
    if not (np.isfinite(n) & (n >= 0)).all():
        raise ValueError(f"`context >= 0` must hold, but got context={context!r}.")
    return n
