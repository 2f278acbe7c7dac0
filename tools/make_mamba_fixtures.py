"""Tiny Hugging Face Mamba (v1) models and what lrp must compute for them.

Writes `tests/fixtures/hf-mamba/NAME/` (a `save_pretrained` directory:
`config.json` and `model.safetensors`) for a few tiny random
`MambaForCausalLM`s of odd sizes, two layers each, and
`tests/fixtures/hf-mamba/expected.json` with, per model and id sequence:

- `logits`: the next-token logits at every position, from our own float64
  reimplementation of transformers' CPU path (`slow_forward`: in_proj,
  causal depthwise conv1d, SiLU, x_proj, dt_proj, softplus, A = -exp(A_log),
  the selective scan, the D skip, the gate y * SiLU(z), out_proj, the
  residual, RMSNorm, norm_f, the lm_head). transformers casts the norms,
  A_log, dt and the logits to float32 even in a float64 model; the
  reimplementation does not, so it is the float64 reference (to 1e-10).
- `transformers_logits`: transformers' own, unmodified output (float32
  accuracy): the reimplementation is checked against it here, and lrp
  against it at float32 tolerance in the Rust tests.
- `relevance`: for the last position and its arg-max, input x modified
  gradient over the embedded tokens `[T, H]`: MambaLRP's rules written as
  detaches (SiLU's sigmoid, Delta, A-bar, B-bar, C and the RMSNorm scale
  constant; the gate y * SiLU(z) split half-half). At eps 0 and bias factor
  0, LRP with these rules is exactly this product (`docs/rules.md`, Mamba).

Models saved as float32 and bfloat16 check that lrp widens them; their
references are computed from the stored (rounded) weights widened to
float64. The `tiny` model also gets a `tokenizer.json` (a word-level
tokenizer of the Hugging Face `tokenizers` library, lowercasing, with
`<unk>` as id 0), so that `lrp explain --text` reads text with it.

Run: /work/venv/bin/python tools/make_mamba_fixtures.py
"""

import json
import os

import torch
from safetensors.torch import load_file
from transformers import MambaConfig, MambaForCausalLM

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "hf-mamba")

# Id sequences per model; one of length 1.
CASES = [[3], [3, 17, 5], [0, 9, 2, 11, 4, 7]]

MODELS = {
    # Odd sizes, tied embeddings, conv bias, no in/out bias (the defaults).
    "tiny": dict(
        vocab_size=19, hidden_size=5, state_size=3, expand=2, conv_kernel=3, time_step_rank=2, dtype=torch.float64
    ),
    # Untied head, in/out projection biases, no conv bias, kernel 4.
    "untied-bias": dict(
        vocab_size=18,
        hidden_size=7,
        state_size=4,
        expand=1,
        conv_kernel=4,
        time_step_rank=3,
        use_bias=True,
        use_conv_bias=False,
        tie_word_embeddings=False,
        layer_norm_epsilon=1e-3,
        dtype=torch.float64,
    ),
    # Stored narrower: lrp must widen them.
    "f32": dict(
        vocab_size=19, hidden_size=6, state_size=2, expand=2, conv_kernel=2, time_step_rank=1, dtype=torch.float32
    ),
    "bf16": dict(
        vocab_size=19, hidden_size=5, state_size=3, expand=2, conv_kernel=3, time_step_rank=2, dtype=torch.bfloat16
    ),
}


def make_model(name, spec, seed):
    spec = dict(spec)
    dtype = spec.pop("dtype")
    torch.manual_seed(seed)
    config = MambaConfig(num_hidden_layers=2, pad_token_id=0, bos_token_id=0, eos_token_id=0, **spec)
    model = MambaForCausalLM(config).to(torch.float64).eval()
    # Random values everywhere (transformers' init leaves A_log = log(1..S),
    # D = 1 and norms at 1, which would hide mistakes).
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("A_log"):
                p.copy_(torch.log(torch.rand_like(p) * 2.0 + 0.2))
            elif pname.endswith("norm.weight") or pname.endswith("norm_f.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif pname.endswith("dt_proj.bias"):
                p.copy_(torch.randn_like(p) * 0.5 - 1.0)
            else:
                p.copy_(torch.randn_like(p) * 0.5)
    model = model.to(dtype)
    path = os.path.join(OUT, name)
    model.save_pretrained(path)
    return model, config


def stored_params(name):
    """The saved tensors widened to float64 (the tied head is the embedding)."""
    tensors = load_file(os.path.join(OUT, name, "model.safetensors"))
    return {k: v.to(torch.float64) for k, v in tensors.items()}


def rmsnorm(x, weight, eps, detach_scale):
    scale = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    if detach_scale:
        scale = scale.detach()
    return weight * (x * scale)


def silu(x, detach_sigmoid):
    s = torch.sigmoid(x)
    return x * (s.detach() if detach_sigmoid else s)


def reference(p, config, ids, rules=False, embedded=None):
    """Next-token logits [T, V] in float64. With `rules`, every MambaLRP
    rule is a detach, so that input x gradient is the relevance."""
    h_size, s_size = config.hidden_size, config.state_size
    di, rank, k = config.intermediate_size, config.time_step_rank, config.conv_kernel
    eps = config.layer_norm_epsilon
    emb = p["backbone.embeddings.weight"]
    x = emb[ids] if embedded is None else embedded  # [T, H]
    t_len = x.shape[0]

    def maybe(v):
        return v.detach() if rules else v

    for layer in range(config.num_hidden_layers):
        pre = f"backbone.layers.{layer}."
        m = pre + "mixer."
        h = rmsnorm(x, p[pre + "norm.weight"], eps, rules)
        xz = h @ p[m + "in_proj.weight"].T
        if config.use_bias:
            xz = xz + p[m + "in_proj.bias"]
        xs, z = xz[:, :di], xz[:, di:]
        # Causal depthwise conv: out[t, c] = sum_j w[c, j] xs[t - (k - 1) + j, c] + b[c].
        w = p[m + "conv1d.weight"][:, 0, :]  # [Di, K]
        padded = torch.cat([torch.zeros(k - 1, di, dtype=x.dtype), xs], dim=0)
        conv = torch.stack([(padded[t : t + k, :] * w.T).sum(0) for t in range(t_len)])
        if config.use_conv_bias:
            conv = conv + p[m + "conv1d.bias"]
        u = silu(conv, rules)  # [T, Di]
        proj = u @ p[m + "x_proj.weight"].T
        dt, b, c = proj[:, :rank], proj[:, rank : rank + s_size], proj[:, rank + s_size :]
        dt = torch.nn.functional.softplus(dt @ p[m + "dt_proj.weight"].T + p[m + "dt_proj.bias"])
        a = -torch.exp(p[m + "A_log"])  # [Di, S]
        da = maybe(torch.exp(dt[:, :, None] * a[None]))  # [T, Di, S]
        db = maybe(dt[:, :, None] * b[:, None, :])  # [T, Di, S]
        c = maybe(c)
        state = torch.zeros(di, s_size, dtype=x.dtype)
        ys = []
        for t in range(t_len):
            state = da[t] * state + db[t] * u[t][:, None]
            ys.append(state @ c[t] + p[m + "D"] * u[t])
        y = torch.stack(ys)
        g = silu(z, rules)
        if rules:
            # Half to y, half to the gate path: d/dy = g / 2, d/dg = y / 2.
            gated = 0.5 * (y * g.detach()) + 0.5 * (y.detach() * g)
        else:
            gated = y * g
        out = gated @ p[m + "out_proj.weight"].T
        if config.use_bias:
            out = out + p[m + "out_proj.bias"]
        x = x + out
    x = rmsnorm(x, p["backbone.norm_f.weight"], eps, rules)
    head = p["lm_head.weight"] if "lm_head.weight" in p else emb
    return x @ head.T


def relevance(p, config, ids):
    """Input x modified gradient of the last position's arg-max logit."""
    emb = p["backbone.embeddings.weight"][ids].clone().requires_grad_(True)
    logits = reference(p, config, ids, rules=True, embedded=emb)
    target = int(torch.argmax(logits[-1]))
    logits[-1, target].backward()
    return target, (emb * emb.grad).detach()


# The `tiny` model's words: word k is token id k.
WORDS = ["<unk>", "the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "it", "was", "not", "very",
         "good", "bad", "film", "."]


def write_tokenizer(path, words):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({w: k for k, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(os.path.join(path, "tokenizer.json"))


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {}
    for seed, (name, spec) in enumerate(MODELS.items()):
        model, config = make_model(name, spec, seed + 1)
        if name == "tiny":
            assert len(WORDS) == config.vocab_size
            write_tokenizer(os.path.join(OUT, name), WORDS)
        p = stored_params(name)
        cases = []
        for ids in CASES:
            ids = [i % config.vocab_size for i in ids]
            with torch.no_grad():
                ours = reference(p, config, torch.tensor(ids))
                theirs = model.to(torch.float64)(torch.tensor([ids])).logits[0].to(torch.float64)
            # transformers' float32 steps: agreement to float32 accuracy.
            err = (ours - theirs).abs().max().item()
            scale = ours.abs().max().item()
            assert err <= 1e-5 * max(1.0, scale), f"{name} {ids}: reimplementation differs by {err}"
            target, rel = relevance(p, config, torch.tensor(ids))
            case = {
                "ids": ids,
                "logits": ours.tolist(),
                "transformers_logits": theirs.tolist(),
                "target": target,
                "relevance": rel.tolist(),
            }
            cases.append(case)
            print(f"{name} {ids}: |ours - transformers| = {err:.2e}, target {target}")
        expected[name] = cases
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
