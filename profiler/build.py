"""Build any decoder architecture with its real Hugging Face class and random weights.

A model is named as a preset (``data/reference/``, through :mod:`perfmodel.presets`), a local
Hugging Face folder, a ``config.json`` path, or either of those plus shape overrides
(``layers``, ``hidden``, ``ffn``, ``heads``, ``kv_heads``). Nothing is downloaded: the model is
made with ``AutoModelForCausalLM.from_config`` in the target dtype with weight initialisation
switched off, then filled with a tiled block of small random numbers (timing does not depend on
the values, only on there being no NaN, infinities or denormals; the tiling is ~3x faster than
``normal_`` on a 1.3e9-parameter layer). ``layers=`` builds a truncated copy for depth
differencing.

A folder whose config names its own model code (``auto_map``) builds only with
``trust_remote_code=True`` (``specdec profile --trust-remote-code``); otherwise it is refused
with a one-line ``ValueError``, never an interactive prompt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfmodel.arch import ArchSpec
from perfmodel.presets import get_preset, preset_names

__all__ = [
    "OVERRIDE_KEYS",
    "ModelRecipe",
    "arch_fields",
    "keep_kv_group",
    "build_model",
    "refuse_custom_code",
    "resolve_model",
    "torch_dtype",
]

# Shape fields a user may override, in CLI order; values are integers >= 1.
OVERRIDE_KEYS = ("layers", "hidden", "ffn", "heads", "kv_heads")

# HF config attribute names of each override, first match wins (llama/mistral/qwen, OPT, GPT-2).
_CONFIG_NAMES = {
    "layers": ("num_hidden_layers",),
    "hidden": ("hidden_size",),
    "ffn": ("intermediate_size", "ffn_dim", "n_inner"),
    "heads": ("num_attention_heads",),
    "kv_heads": ("num_key_value_heads",),
}

# Model types whose MLP has two matrices (up, down), like OPT; the rest are taken as gated (llama).
_TWO_MATRIX_MLP = {"opt", "gpt2", "gpt_neox", "gptj", "gpt_bigcode", "bloom", "falcon", "phi"}

_DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16"}
_DTYPES |= {"fp16": "float16", "float16": "float16", "half": "float16"}


@dataclass(frozen=True, eq=False)
class ModelRecipe:
    """What to build: a Hugging Face config with the name and shape it was resolved to.

    Parameters
    ----------
    name : str
        File-safe model name (the CSV's ``model`` column and file name).
    config : transformers.PretrainedConfig
        The full-depth config (overrides applied).
    source : str
        ``"preset:<name>"`` or ``"path:<config.json>"``, plus ``" +overrides"`` where given.
    arch : ArchSpec or None
        The perfmodel spec of the full model, for roofline bounds; ``None`` where the model type
        is not one ArchSpec describes (the llama and OPT layouts and the model types
        :meth:`perfmodel.ArchSpec.from_hf_config` reads as them).
    overrides : Mapping[str, int]
        The shape overrides that were applied.
    trust_remote_code : bool
        Build the model with the folder's own code (its config's ``auto_map``); only where the
        user asked for it.
    """

    name: str
    config: Any
    source: str
    arch: ArchSpec | None
    overrides: Mapping[str, int] = field(default_factory=dict)
    trust_remote_code: bool = False

    @property
    def layers(self) -> int:
        return int(self.config.num_hidden_layers)


def torch_dtype(dtype: str) -> Any:
    """``"fp32" | "bf16" | "fp16"`` (or torch's names) -> ``torch.dtype``."""
    import torch

    if dtype not in _DTYPES:
        raise ValueError(f"`dtype in ('fp32', 'bf16', 'fp16')` must hold, but got {dtype=}.")
    return getattr(torch, _DTYPES[dtype])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]+", "-", text).strip("-") or "model"


def _check_overrides(overrides: Mapping[str, int]) -> dict[str, int]:
    unknown = set(overrides) - set(OVERRIDE_KEYS)
    if unknown:
        raise ValueError(f"`overrides` keys must be in {OVERRIDE_KEYS}, but got {sorted(unknown)}.")
    out = {}
    for key in OVERRIDE_KEYS:
        value = overrides.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key} >= 1` must hold (an integer), but got {key}={value!r}.")
        out[key] = value
    return out


def keep_kv_group(spec: ArchSpec, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` with ``kv_heads`` added where ``heads`` is changed alone: the spec's
    query heads per key/value head kept where they still divide, else plain multi-head
    attention (so ``--heads 8`` on llama-2-70b's 64/8 gives 8/1, on llama-7b's 32/32 8/8)."""
    out = dict(overrides)
    if "heads" in out and "kv_heads" not in out:
        group = spec.heads // spec.kv_heads
        out["kv_heads"] = out["heads"] // group if out["heads"] % group == 0 else out["heads"]
    return out


def _check_heads(hidden: int, heads: int, kv_heads: int) -> None:
    if hidden % heads:
        raise ValueError(
            f"`hidden % heads == 0` must hold, but got hidden={hidden} and heads={heads}."
        )
    if heads % kv_heads:
        raise ValueError(
            f"`heads % kv_heads == 0` must hold, but got heads={heads} and kv_heads={kv_heads}."
        )


def _config_from_arch(spec: ArchSpec) -> Any:
    from transformers import LlamaConfig, OPTConfig

    if spec.family == "llama":
        return LlamaConfig(
            vocab_size=spec.vocab,
            hidden_size=spec.hidden,
            intermediate_size=spec.ffn,
            num_hidden_layers=spec.layers,
            num_attention_heads=spec.heads,
            num_key_value_heads=spec.kv_heads,
            head_dim=spec.head_dim,
            max_position_embeddings=spec.max_positions,
            tie_word_embeddings=spec.tied_embeddings,
        )
    return OPTConfig(
        vocab_size=spec.vocab,
        hidden_size=spec.hidden,
        ffn_dim=spec.ffn,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        word_embed_proj_dim=spec.hidden,
        do_layer_norm_before=True,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=spec.tied_embeddings,
    )


def _config_path(model: str) -> Path | None:
    """The config.json a path names, or None when ``model`` does not look like a path."""
    p = Path(model).expanduser()
    if p.is_dir():
        return p / "config.json"
    if p.is_file() or model.endswith(".json") or "/" in model or model.startswith("."):
        return p
    return None


def refuse_custom_code(raw: Any, path: Path, *, trust_remote_code: bool) -> None:
    """Raise ``ValueError`` when the config ``raw`` (read from ``path``) names its own model code
    (``auto_map``) and the user did not ask for it; transformers would prompt on a terminal."""
    if isinstance(raw, dict) and raw.get("auto_map") and not trust_remote_code:
        names = ", ".join(sorted(map(str, raw["auto_map"])))
        raise ValueError(
            f"`trust_remote_code` must be asked for to build {path}: its config names its own "
            f"model code (auto_map: {names}); read that code, then pass --trust-remote-code "
            "(library: trust_remote_code=True)."
        )


def _language_model(config: Any) -> tuple[Any, str]:
    """``(config, "")``, or for an image-text model (Gemma 3 4B and up, Mistral 3, LLaVA) whose
    config holds no decoder of its own, ``(its text_config, " (language model)")``: what a
    decoding step runs, with the LM head tied as the wrapper ties it."""
    text = getattr(config, "text_config", None)
    if text is None or getattr(config, "num_hidden_layers", None) is not None:
        return config, ""
    tie = config.to_dict().get("tie_word_embeddings")
    if tie is not None:
        text.tie_word_embeddings = bool(tie)
    return text, " (language model)"


def _load_hf_config(path: Path, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoConfig

    if not path.is_file():
        where = path.parent if path.name == "config.json" else path
        raise ValueError(f"{where} is not a model: no Hugging Face config.json at {path}.")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a model: not a readable JSON config ({exc}).") from None
    if not isinstance(raw, dict) or "model_type" not in raw:
        raise ValueError(f"{path} is not a model: its JSON has no 'model_type'.")
    refuse_custom_code(raw, path, trust_remote_code=trust_remote_code)
    # custom code is found beside config.json: give transformers the folder
    where = path.parent if trust_remote_code and path.name == "config.json" else path
    try:
        return AutoConfig.from_pretrained(
            str(where), trust_remote_code=trust_remote_code, local_files_only=True
        )
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(f"{path} is not a model transformers can build: {exc}") from None


# Per-layer lists of a config (Gemma 2/3, Qwen2/3, gpt-oss, OLMo-3 layer_types; SmolLM3's
# no_rope_layers), one entry per decoder layer: a deeper or shallower copy cycles them.
_PER_LAYER_LISTS = ("layer_types", "no_rope_layers")


def _cycle_per_layer_lists(config: Any, layers: int) -> None:
    for name in _PER_LAYER_LISTS:
        if getattr(config, name, None):
            setattr(config, name, _cycle(list(getattr(config, name)), layers))


def _apply_overrides(config: Any, overrides: Mapping[str, int]) -> None:
    if "layers" in overrides:
        _cycle_per_layer_lists(config, overrides["layers"])
    for key, value in overrides.items():
        names = [n for n in _CONFIG_NAMES[key] if hasattr(config, n)]
        if not names:
            raise ValueError(
                f"cannot override {key}: config of model_type={config.model_type!r} has none of "
                f"{_CONFIG_NAMES[key]}."
            )
        setattr(config, names[0], value)
    if "hidden" in overrides or "heads" in overrides:
        if getattr(config, "head_dim", None) is not None:
            config.head_dim = config.hidden_size // config.num_attention_heads
    if config.model_type == "opt" and "hidden" in overrides:
        config.word_embed_proj_dim = config.hidden_size


def _experts(config: Any) -> int:
    """Routed experts of a mixture-of-experts config (Mixtral's num_local_experts, Qwen-MoE's
    num_experts, DeepSeek's n_routed_experts, gpt-oss's num_local_experts), 0 for a dense one."""
    for name in ("num_local_experts", "num_experts", "n_routed_experts"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 1:
            return value
    return 0


def arch_fields(config: Any) -> dict[str, Any]:
    """The shape columns of a profile row, read from any decoder's HF config.

    Returns
    -------
    dict
        ``layers, hidden, ffn, heads, kv_heads, head_dim, vocab`` (counts; head_dim is the
        config's where it names one, else hidden / heads), ``experts`` (routed experts of a
        mixture-of-experts MLP, 0 for a dense one), ``family`` (``"llama"`` for a gated
        MLP, ``"opt"`` for a two-matrix MLP), ``tied`` (bool), ``model_type`` (HF's).

    Raises
    ------
    ValueError
        The config has no attention layers to describe (a state-space model such as Mamba).
    """
    missing = [n for n in ("hidden_size", "num_attention_heads", "num_hidden_layers")
               if getattr(config, n, None) is None]  # fmt: skip
    if missing:
        raise ValueError(
            "`a decoder with attention layers (hidden_size, num_attention_heads, "
            f"num_hidden_layers in its config)` must hold to profile it, but model_type="
            f"{getattr(config, 'model_type', None)!r} has no {', '.join(missing)}."
        )
    hidden = int(config.hidden_size)
    ffn = next(
        (getattr(config, n) for n in _CONFIG_NAMES["ffn"] if getattr(config, n, None)),
        4 * hidden,
    )
    heads = int(config.num_attention_heads)
    kv = getattr(config, "num_key_value_heads", None)
    if kv is None and getattr(config, "multi_query", False):
        # Falcon: one key/value head unless the new decoder architecture names num_kv_heads
        new = getattr(config, "new_decoder_architecture", False)
        kv = getattr(config, "num_kv_heads", None) if new else 1
    kv = kv or heads
    model_type = str(config.model_type)
    return {
        "layers": int(config.num_hidden_layers),
        "hidden": hidden,
        "ffn": int(ffn),
        "heads": heads,
        "kv_heads": int(kv),
        "head_dim": int(getattr(config, "head_dim", None) or hidden // heads),
        "vocab": int(config.vocab_size),
        "experts": _experts(config),
        "family": "opt" if model_type in _TWO_MATRIX_MLP else "llama",
        "tied": bool(getattr(config, "tie_word_embeddings", False)),
        "model_type": model_type,
    }


def _override_suffix(overrides: Mapping[str, int]) -> str:
    return "".join(f"_{k.replace('_', '')}{v}" for k, v in overrides.items())


def resolve_model(
    model: str,
    *,
    overrides: Mapping[str, int] | None = None,
    name: str | None = None,
    trust_remote_code: bool = False,
) -> ModelRecipe:
    """Turn a model name (preset, HF folder, config.json) plus overrides into a recipe.

    Parameters
    ----------
    model : str
        A preset name (see ``perfmodel.presets.preset_names()``), a folder holding a
        ``config.json``, or a ``config.json`` path.
    overrides : Mapping[str, int], optional
        Shape fields to change: ``layers``, ``hidden``, ``ffn``, ``heads``, ``kv_heads``.
    name : str, optional
        Name of the result (default: the preset or folder name plus the overrides).
    trust_remote_code : bool
        Allow a folder whose config names its own model code (``auto_map``); off by default.

    Returns
    -------
    ModelRecipe

    Raises
    ------
    ValueError
        Unknown preset, a path that is not a model, heads that do not divide hidden, kv_heads that
        do not divide heads, a non-positive override, custom model code without
        ``trust_remote_code``.

    Examples
    --------
    >>> r = resolve_model("llama-7b", overrides={"layers": 2, "hidden": 512, "heads": 8})
    >>> r.name, r.layers, r.config.hidden_size, r.config.head_dim
    ('llama-7b_layers2_hidden512_heads8', 2, 512, 64)
    """
    ov = _check_overrides(overrides or {})
    path = _config_path(model)
    if path is None:
        if model not in preset_names():
            raise ValueError(
                f"unknown preset {model!r} and no such path; known presets: "
                f"{', '.join(preset_names())}."
            )
        spec = get_preset(model)
        user_keys = set(ov)
        ov = keep_kv_group(spec, ov)
        _check_heads(
            ov.get("hidden", spec.hidden),
            ov.get("heads", spec.heads),
            ov.get("kv_heads", spec.kv_heads),
        )
        user_ov = {k: v for k, v in ov.items() if k in user_keys}
        spec = spec.replace(**ov, name=name or model + _override_suffix(user_ov))
        config = _config_from_arch(spec)
        source = f"preset:{model}" + (" +overrides" if ov else "")
        return ModelRecipe(
            name=_slug(spec.name), config=config, source=source, arch=spec, overrides=ov
        )
    config = _load_hf_config(path, trust_remote_code=trust_remote_code)
    config, part = _language_model(config)
    _apply_overrides(config, ov)
    f = arch_fields(config)
    _check_heads(f["hidden"], f["heads"], f["kv_heads"])
    base = path.parent.name if path.name == "config.json" else path.stem
    rname = _slug(name or base + _override_suffix(ov))
    try:
        arch = ArchSpec.from_hf_config(config.to_dict(), name=rname, source=str(path))
    except (ValueError, KeyError, TypeError):
        arch = None  # not a llama/opt layout: no roofline bound
    source = f"path:{path}" + part + (" +overrides" if ov else "")
    return ModelRecipe(
        name=rname,
        config=config,
        source=source,
        arch=arch,
        overrides=ov,
        trust_remote_code=trust_remote_code,
    )


def build_model(
    recipe: ModelRecipe,
    *,
    layers: int | None = None,
    dtype: str = "fp32",
    device: str = "cpu",
    seed: int = 0,
) -> Any:
    """Instantiate the recipe's real HF model class with random weights, in eval mode.

    Parameters
    ----------
    recipe : ModelRecipe
        From :func:`resolve_model`.
    layers : int, optional
        Build only the first ``layers`` decoder layers (a truncated copy for depth
        differencing); default the recipe's depth.
    dtype : {"fp32", "bf16", "fp16"}
        Parameter dtype.
    device : str
        ``"cpu"`` or ``"cuda"`` (or ``"cuda:1"``); the weights are allocated there directly.
    seed : int
        Seed of the random block the weights are tiled from.

    Returns
    -------
    transformers.PreTrainedModel
    """
    import copy

    import torch
    from transformers import AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    tdtype = torch_dtype(dtype)
    config = copy.deepcopy(recipe.config)
    if layers is not None:
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
            raise ValueError(f"`layers >= 1` must hold, but got {layers=}.")
        config.num_hidden_layers = layers
        _cycle_per_layer_lists(config, layers)
    config.use_cache = True
    try:
        with torch.device(device), no_init_weights():
            model = AutoModelForCausalLM.from_config(
                config, dtype=tdtype, trust_remote_code=recipe.trust_remote_code
            )
    except ValueError as exc:
        if "Unrecognized configuration class" not in str(exc):
            raise
        import transformers

        raise ValueError(
            "`a model type with a causal-LM class in transformers` must hold to build "
            f"{recipe.name}, but model_type={config.model_type!r} has none in transformers "
            f"{transformers.__version__}."
        ) from None
    _fill_random(model, seed=seed)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    return model.eval()


def _cycle(items: list[Any], n: int) -> list[Any]:
    """The first ``n`` of ``items`` repeated (per-layer types of a deeper or shallower copy)."""
    return (items * (n // len(items) + 1))[:n]


def _fill_random(model: Any, *, seed: int) -> None:
    """Weights (>= 2-D) from a tiled U(-0.04, 0.04) block; norm scales 1; biases 0."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    block_n = 1 << 20
    with torch.no_grad():
        block = torch.rand(block_n, generator=gen).mul_(0.08).sub_(0.04)
        cache: dict[tuple[Any, Any], torch.Tensor] = {}
        for pname, p in model.named_parameters():
            if p.ndim < 2:
                p.fill_(0.0 if pname.endswith("bias") else 1.0)
                continue
            key = (p.dtype, p.device)
            if key not in cache:
                cache[key] = block.to(dtype=p.dtype, device=p.device)
            src = cache[key]
            flat = p.view(-1)
            full = flat.numel() // block_n
            if full:
                flat[: full * block_n].view(full, block_n).copy_(src.expand(full, block_n))
            rest = flat.numel() - full * block_n
            if rest:
                flat[full * block_n :].copy_(src[:rest])
        for bname, b in model.named_buffers():
            if b.is_floating_point() and not torch.isfinite(b).all():
                raise RuntimeError(f"buffer {bname} is not finite after building the model.")
