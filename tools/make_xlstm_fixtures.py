"""Tiny Hugging Face xLSTM models and what lrp must compute for them.

Writes `tests/fixtures/hf-xlstm/NAME/` (a `save_pretrained` directory:
`config.json` and `model.safetensors`) for a few tiny random
`xLSTMForCausalLM`s (`model_type` `xlstm`, an mLSTM stack) of odd sizes,
two blocks and several heads each, and `tests/fixtures/hf-xlstm/expected.json`
with, per model and id sequence:

- `logits`: the next-token logits at every position, from our own float64
  reimplementation of transformers' native CPU path. The configs keep
  `mode` "inference", `step_kernel` "native" and `sequence_kernel`
  "native_sequence__native", and every sequence is shorter than
  `chunk_size` (64), so transformers runs the recurrent step
  (`mlstm_recurrent_step_native`) at every position: the step kernel for
  length 1, the sequence kernel (a loop over the same step) otherwise; the
  chunkwise kernel is never reached. transformers casts the mLSTM states
  (`inference_state_dtype` float32), the norms' reductions
  (`norm_reduction_force_float32`) and the logits to float32 even in a
  float64 model; the reimplementation does not, so it is the float64
  reference (to 1e-10).
- `transformers_logits`: transformers' own, unmodified output (float32
  accuracy): the reimplementation is checked against it here.
- `relevance` (and `relevance_attnlrp`): for the last position and its
  arg-max, input x modified gradient over the embedded tokens `[T, H]`,
  the xLSTM rules of `docs/rules.md` written as detaches: the RMSNorm
  scale, the multi-head LayerNorm's scale (not its mean), the input,
  forget and output gates, the stabiliser m, the normaliser's denominator
  max(|q.n|, exp(-m)) + eps and SiLU(gate) of the feed-forward constant,
  and the logit soft cap as its own ratio cap(z)/z. With these constants
  the cell's output is `sum_s A_ts v_s` with A_ts = w_ts (q_t.k_s)/den_t:
  by default the query-key products are constants too, so the value takes
  all the relevance; `relevance_attnlrp` splits each product of two
  signals half-half instead ((q.k) and v, then q and k). At eps 0 and bias
  factor 0, LRP with these rules is exactly this product.
- `gradient`: plain input x gradient of the same logit (no detaches).

Models saved as float32 and bfloat16 check that lrp widens them; their
references are computed from the stored (rounded) weights widened to
float64.

Run: /work/venv/bin/python tools/make_xlstm_fixtures.py
"""

import json
import math
import os

import torch
from safetensors.torch import load_file
from transformers import xLSTMConfig, xLSTMForCausalLM

from make_mamba_fixtures import rmsnorm  # the same RMSNorm, its scale detachable

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "hf-xlstm")

# Id sequences per model; one of length 1 (the step kernel).
CASES = [[3], [3, 17, 5], [0, 9, 2, 11, 4, 7]]

MODELS = {
    # 3 heads, q/k head width 2, v head width 3, FFN width 12, both caps.
    "tiny": dict(
        vocab_size=19,
        hidden_size=9,
        num_heads=3,
        qk_dim_factor=0.67,
        v_dim_factor=1.0,
        ffn_proj_factor=1.3,
        ffn_round_up_to_multiple_of=4,
        gate_soft_cap=3.0,
        output_logit_soft_cap=5.0,
        dtype=torch.float64,
    ),
    # 5 heads of q/k width 1 and v width 2 (v wider than H), FFN width 7.
    "wide-v": dict(
        vocab_size=13,
        hidden_size=5,
        num_heads=5,
        qk_dim_factor=1.0,
        v_dim_factor=2.0,
        ffn_proj_factor=1.4,
        ffn_round_up_to_multiple_of=1,
        gate_soft_cap=15.0,
        output_logit_soft_cap=2.0,
        norm_eps=1e-3,
        eps=1e-4,
        dtype=torch.float64,
    ),
    # Stored narrower: lrp must widen them.
    "f32": dict(
        vocab_size=17,
        hidden_size=6,
        num_heads=2,
        qk_dim_factor=0.67,
        v_dim_factor=1.0,
        ffn_proj_factor=1.5,
        ffn_round_up_to_multiple_of=3,
        gate_soft_cap=4.0,
        output_logit_soft_cap=6.0,
        dtype=torch.float32,
    ),
    "bf16": dict(
        vocab_size=19,
        hidden_size=9,
        num_heads=3,
        qk_dim_factor=0.67,
        v_dim_factor=1.0,
        ffn_proj_factor=1.3,
        ffn_round_up_to_multiple_of=4,
        gate_soft_cap=3.0,
        output_logit_soft_cap=5.0,
        dtype=torch.bfloat16,
    ),
}


def make_model(name, spec, seed):
    spec = dict(spec)
    dtype = spec.pop("dtype")
    torch.manual_seed(seed)
    config = xLSTMConfig(num_hidden_layers=2, pad_token_id=0, bos_token_id=0, eos_token_id=0, **spec)
    model = xLSTMForCausalLM(config).to(torch.float64).eval()
    # Random values everywhere (the init leaves norms at 1 and gate biases
    # at fixed values, which would hide mistakes).
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif pname.endswith("fgate_preact.bias"):
                p.copy_(torch.randn_like(p) + 2.0)
            else:
                p.copy_(torch.randn_like(p) * 0.6)
    model = model.to(dtype)
    path = os.path.join(OUT, name)
    model.save_pretrained(path)
    return model, config


def stored_params(name):
    """The saved tensors widened to float64."""
    tensors = load_file(os.path.join(OUT, name, "model.safetensors"))
    return {k: v.to(torch.float64) for k, v in tensors.items()}


def head_layernorm(h, weight, eps, detach_scale):
    """LayerNorm over each head's last axis of h [T, NH, DV], then * weight."""
    centred = h - h.mean(-1, keepdim=True)
    scale = torch.rsqrt(h.var(-1, keepdim=True, unbiased=False) + eps)
    if detach_scale:
        scale = scale.detach()
    return (centred * scale).reshape(h.shape[0], -1) * weight


def soft_cap(x, cap, rules):
    if cap is None:
        return x
    capped = cap * torch.tanh(x / cap)
    if rules:
        # Relevance passes unchanged: the cap is x times its own ratio.
        return x * (capped / x).detach()
    return capped


def product(a, b, split):
    """a * b; with `split`, half of its relevance to each factor."""
    if split:
        return 0.5 * (a * b.detach()) + 0.5 * (a.detach() * b)
    return a * b


def mlstm(q, k, v, i_pre, f_pre, eps, rules):
    """The recurrent mLSTM of every head: q, k [T, NH, DQK], v [T, NH, DV],
    gates [T, NH]; returns h [T, NH, DV]. `rules`: None (the model), "lrp"
    (gates, stabiliser and denominator constant, and so the q.k weights),
    "attnlrp" (the same constants, products of two signals split half-half)."""
    t_len, nh, dqk = q.shape
    dv = v.shape[-1]
    const = (lambda x: x.detach()) if rules else (lambda x: x)
    qs = q * dqk**-0.5
    logf = torch.nn.functional.logsigmoid(f_pre)
    c = torch.zeros(nh, dqk, dv, dtype=q.dtype)
    n = torch.zeros(nh, dqk, dtype=q.dtype)
    m = torch.zeros(nh, dtype=q.dtype)
    hs = []
    if not rules:
        for t in range(t_len):
            m_new = torch.maximum(logf[t] + m, i_pre[t])
            fa = torch.exp(logf[t] + m - m_new)
            ia = torch.exp(i_pre[t] - m_new)
            c = fa[:, None, None] * c + ia[:, None, None] * (k[t][:, :, None] * v[t][:, None, :])
            n = fa[:, None] * n + ia[:, None] * k[t]
            num = (qs[t][:, :, None] * c).sum(1)
            den = torch.maximum((qs[t] * n).sum(-1).abs(), torch.exp(-m_new)) + eps
            hs.append(num / den[:, None])
            m = m_new
        return torch.stack(hs)
    # With the rules: h_t = sum_s w_ts (q_t.k_s) / den_t * v_s, the weights
    # w_ts = exp(i_s + F_t - F_s - m_t) (F the running sum of log f) and
    # den_t constant; the same numbers as the recurrence.
    split = rules == "attnlrp"
    f_sum = torch.cumsum(logf, 0)
    for t in range(t_len):
        m_new = torch.maximum(logf[t] + m, i_pre[t])
        fa = torch.exp(logf[t] + m - m_new)
        ia = torch.exp(i_pre[t] - m_new)
        n = fa[:, None] * n + ia[:, None] * k[t]
        den = const(torch.maximum((qs[t] * n).sum(-1).abs(), torch.exp(-m_new)) + eps)
        m = m_new
        out = torch.zeros(nh, dv, dtype=q.dtype)
        for s in range(t + 1):
            w = const(torch.exp(i_pre[s] + f_sum[t] - f_sum[s] - m))  # [NH]
            qk = product(qs[t], k[s], split).sum(-1)  # [NH]
            if not split:
                qk = qk.detach()
            out = out + product((w * qk / den)[:, None], v[s], split)
        hs.append(out)
    return torch.stack(hs)


def reference(p, config, ids, rules=None, embedded=None):
    """Next-token logits [T, V] in float64 (see `mlstm` for `rules`)."""
    nh = config.num_heads
    emb = p["backbone.embeddings.weight"]
    x = emb[ids] if embedded is None else embedded  # [T, H]
    t_len = x.shape[0]
    const = (lambda z: z.detach()) if rules else (lambda z: z)
    for layer in range(config.num_hidden_layers):
        b = f"backbone.blocks.{layer}."
        m = b + "mlstm_layer."
        h = rmsnorm(x, p[b + "norm_mlstm.weight"], config.norm_eps, rules)
        q = (h @ p[m + "q.weight"].T).reshape(t_len, nh, -1)
        k = (h @ p[m + "k.weight"].T).reshape(t_len, nh, -1)
        v = (h @ p[m + "v.weight"].T).reshape(t_len, nh, -1)
        o = h @ p[m + "ogate_preact.weight"].T
        cap = config.gate_soft_cap
        i_pre = const(cap * torch.tanh((h @ p[m + "igate_preact.weight"].T + p[m + "igate_preact.bias"]) / cap))
        f_pre = const(cap * torch.tanh((h @ p[m + "fgate_preact.weight"].T + p[m + "fgate_preact.bias"]) / cap))
        cell = mlstm(q, k, v, i_pre, f_pre, config.eps, rules)
        normed = head_layernorm(cell, p[m + "multihead_norm.weight"], config.norm_eps, rules)
        x = x + (const(torch.sigmoid(o)) * normed) @ p[m + "out_proj.weight"].T
        h = rmsnorm(x, p[b + "norm_ffn.weight"], config.norm_eps, rules)
        gate = h @ p[b + "ffn.proj_up_gate.weight"].T
        up = h @ p[b + "ffn.proj_up.weight"].T
        x = x + (const(torch.nn.functional.silu(gate)) * up) @ p[b + "ffn.proj_down.weight"].T
    x = rmsnorm(x, p["backbone.out_norm.weight"], config.norm_eps, rules)
    logits = x @ p["lm_head.weight"].T
    return soft_cap(logits, config.output_logit_soft_cap, rules)


def input_times_gradient(p, config, ids, rules, target=None):
    """Input x (modified) gradient of the last position's `target` logit
    (its arg-max when None)."""
    emb = p["backbone.embeddings.weight"][ids].clone().requires_grad_(True)
    logits = reference(p, config, ids, rules=rules, embedded=emb)
    if target is None:
        target = int(torch.argmax(logits[-1]))
    logits[-1, target].backward()
    return target, (emb * emb.grad).detach()


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {}
    for seed, (name, spec) in enumerate(MODELS.items()):
        model, config = make_model(name, spec, seed + 1)
        p = stored_params(name)
        cases = []
        for ids in CASES:
            ids = [i % config.vocab_size for i in ids]
            with torch.no_grad():
                ours = reference(p, config, torch.tensor(ids))
                # use_cache=False: transformers' cache sizes its states from
                # the 64-rounded qk_dim/v_dim, not the layers' int(H * factor).
                theirs = model.to(torch.float64)(torch.tensor([ids]), use_cache=False).logits[0].to(torch.float64)
            # transformers' float32 steps: agreement to float32 accuracy.
            err = (ours - theirs).abs().max().item()
            scale = ours.abs().max().item()
            assert err <= 1e-5 * max(1.0, scale), f"{name} {ids}: reimplementation differs by {err}"
            target, rel = input_times_gradient(p, config, torch.tensor(ids), "lrp")
            _, rel_attn = input_times_gradient(p, config, torch.tensor(ids), "attnlrp", target)
            _, grad = input_times_gradient(p, config, torch.tensor(ids), None, target)
            # No biases reach the relevance (the gates are constants): both
            # rule choices conserve the logit exactly.
            for r in (rel, rel_attn):
                assert abs(r.sum().item() - ours[-1, target].item()) < 1e-12, (name, ids)
            # The rules' constants leave the forward values alone.
            with torch.no_grad():
                for rules in ("lrp", "attnlrp"):
                    again = reference(p, config, torch.tensor(ids), rules=rules)
                    assert (again - ours).abs().max().item() < 1e-12, (name, rules)
            cases.append(
                {
                    "ids": ids,
                    "logits": ours.tolist(),
                    "transformers_logits": theirs.tolist(),
                    "target": target,
                    "relevance": rel.tolist(),
                    "relevance_attnlrp": rel_attn.tolist(),
                    "gradient": grad.tolist(),
                }
            )
            print(f"{name} {ids}: |ours - transformers| = {err:.2e}, target {target}")
        expected[name] = cases
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
