"""The engine is lossless on causal LMs other than Llama, and with sliding-window layers inside
the window: greedy speculative decoding of a batch of prompts of different lengths (left
padding, then per-row rollback that leaves invalid columns inside rows) equals Hugging Face's
own greedy ``generate`` of each prompt alone.

Models are built from configs with random weights (a draft is the target with noise added, so
rows accept different counts in most steps). float64 where transformers allows it (see DTYPES).
"""

from __future__ import annotations

import copy

import pytest
import torch
import transformers as hf

from profiler.engine import speculative_generate

PROMPTS = [[1, 2, 3, 4, 5], [7, 8], [9, 10, 11, 12, 13, 14, 15, 16, 17]]
NEW_TOKENS = 16

CONFIGS = {
    # multi-query attention: one cached key/value head
    "falcon": lambda: hf.FalconConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      vocab_size=128),
    # ALiBi biases built from the 2-D attention mask
    "falcon-alibi": lambda: hf.FalconConfig(hidden_size=64, num_hidden_layers=2,
                                            num_attention_heads=4, vocab_size=128, alibi=True),
    "bloom": lambda: hf.BloomConfig(hidden_size=64, n_layer=2, n_head=4, vocab_size=128),
    # learned absolute positions; OPT's are offset by 2
    "gpt2": lambda: hf.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=128, n_positions=256),
    "opt": lambda: hf.OPTConfig(hidden_size=64, ffn_dim=128, num_hidden_layers=2,
                                num_attention_heads=4, vocab_size=128, word_embed_proj_dim=64),
    # grouped-query attention with biases on q, k, v
    "qwen2": lambda: hf.Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, vocab_size=128),
    # sliding-window layers, run inside the window (Mistral-7B-v0.1's 4096; Qwen2's upper layers)
    "mistral-window": lambda: hf.MistralConfig(hidden_size=64, intermediate_size=128,
                                               num_hidden_layers=2, num_attention_heads=4,
                                               num_key_value_heads=2, vocab_size=128,
                                               sliding_window=4096),
    "qwen2-window": lambda: hf.Qwen2Config(hidden_size=64, intermediate_size=128,
                                           num_hidden_layers=2, num_attention_heads=4,
                                           num_key_value_heads=2, vocab_size=128,
                                           use_sliding_window=True, sliding_window=4096,
                                           max_window_layers=1),
    # more layouts: parallel attention and MLP (GPT-NeoX, GPT-J, Cohere), fused multi-query
    # (GPT-BigCode), fused q/k/v (Phi-3), q/k norms (OLMo-2; Qwen3 with a head_dim apart),
    # scaled embeddings (Gemma, Granite), biases (Starcoder2), experts (Mixtral, DeepSeek-V3's
    # latent attention)
    "gpt_neox": lambda: hf.GPTNeoXConfig(hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4,
                                         vocab_size=128),
    "gptj": lambda: hf.GPTJConfig(n_embd=64, n_layer=2, n_head=4, vocab_size=128, rotary_dim=8),
    "cohere": lambda: hf.CohereConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, vocab_size=128),
    "gpt_bigcode": lambda: hf.GPTBigCodeConfig(n_embd=64, n_layer=2, n_head=4, vocab_size=128),
    "phi3": lambda: hf.Phi3Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=4, vocab_size=128,
                                  pad_token_id=0),
    "qwen3": lambda: hf.Qwen3Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                                    vocab_size=128),
    "olmo2": lambda: hf.Olmo2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, vocab_size=128),
    "gemma": lambda: hf.GemmaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                                    vocab_size=128),
    "granite": lambda: hf.GraniteConfig(hidden_size=64, intermediate_size=128,
                                        num_hidden_layers=2, num_attention_heads=4,
                                        vocab_size=128),
    "starcoder2": lambda: hf.Starcoder2Config(hidden_size=64, intermediate_size=128,
                                              num_hidden_layers=2, num_attention_heads=4,
                                              num_key_value_heads=2, vocab_size=128,
                                              sliding_window=None),
    "mixtral": lambda: hf.MixtralConfig(hidden_size=64, intermediate_size=128,
                                        num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=2, vocab_size=128,
                                        num_local_experts=4),
    "deepseek_v3": lambda: hf.DeepseekV3Config(
        hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, vocab_size=128, q_lora_rank=32,
        kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=8,
        n_routed_experts=4, num_experts_per_tok=2, first_k_dense_replace=1, n_group=1,
        topk_group=1),
}  # fmt: skip
# float32 where transformers needs it: BLOOM's padded pass is NaN in float64, and the experts'
# grouped products take no float64
DTYPES = {"bloom": torch.float32, "mixtral": torch.float32, "deepseek_v3": torch.float32}


def _pair(config, dtype):
    torch.manual_seed(0)
    target = hf.AutoModelForCausalLM.from_config(config).eval().to(dtype)
    with torch.no_grad():
        for p in target.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 1.0)  # far from the small init: varied greedy tokens
        draft = copy.deepcopy(target)
        for p in draft.parameters():
            if p.dim() > 1:
                p.add_(0.1 * torch.randn_like(p))
    return target, draft


def _hf_greedy(model, prompt):
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=NEW_TOKENS,
                             min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)  # fmt: skip
    return tuple(out[0, len(prompt) :].tolist())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_batched_speculative_greedy_equals_hf_greedy_per_prompt(name):
    target, draft = _pair(CONFIGS[name](), DTYPES.get(name, torch.float64))
    expected = tuple(_hf_greedy(target, p) for p in PROMPTS)
    result = speculative_generate(target, draft, PROMPTS, gamma=3, max_new_tokens=NEW_TOKENS)
    assert result.output_ids == expected
    mixed = sum(len(set(step.accepted)) > 1 for step in result.steps)
    assert mixed >= 2, "rows should accept different counts in some steps (invalid columns)"


def test_mpt_runs_one_row_at_a_time():
    # MPT's ALiBi counts cache columns whatever the mask says: a batch would not be lossless
    config = hf.MptConfig(d_model=64, n_layers=2, n_heads=4, vocab_size=128, max_seq_len=256)
    target, draft = _pair(config, torch.float64)
    with pytest.raises(ValueError, match="batch == 1"):
        speculative_generate(target, draft, PROMPTS, gamma=3, max_new_tokens=NEW_TOKENS)
    for prompt in PROMPTS:
        result = speculative_generate(target, draft, [prompt], gamma=3, max_new_tokens=NEW_TOKENS)
        assert result.output_ids == (_hf_greedy(target, prompt),)


def test_a_run_that_could_outgrow_the_sliding_window_is_refused():
    config = hf.MistralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                              sliding_window=40)  # fmt: skip
    target, draft = _pair(config, torch.float64)
    # batch 3: 9 prompt tokens + 16 new tokens x (γ + 1) could reach 74 columns
    with pytest.raises(ValueError, match=r"inside the sliding window.*window 40 tokens.*74"):
        speculative_generate(target, draft, PROMPTS, gamma=3, max_new_tokens=NEW_TOKENS)
    # one row grows by its own tokens: 5 + 16 + 4 + 1 = 26 columns fit
    result = speculative_generate(target, draft, PROMPTS[:1], gamma=3, max_new_tokens=NEW_TOKENS)
    assert result.output_ids == (_hf_greedy(target, PROMPTS[0]),)
