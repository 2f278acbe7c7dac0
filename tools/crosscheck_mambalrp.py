"""Cross-checks lrp's Mamba explanations with MambaLRP's own code.

MambaLRP (Jafari et al., NeurIPS 2024; github.com/FarnoushRJ/MambaLRP) is
run beside lrp, never copied into it: give the directory that holds its
`mamba_lrp` package (e.g. `git archive HEAD mamba_lrp | tar -x -C DIR` of
a clone). For each float64 fixture of `tests/fixtures/hf-mamba` and each
id sequence of `expected.json`, it wraps the `transformers` model in
MambaLRP's `ModifiedMambaForCausalLM`, computes its relevance per token
with its `relevance_propagation` (input x gradient of the target logit at
the last position), and compares it with `lrp explain --ids ... --eps 0
--bias-factor 0` (the real binary).

Three runs, to name the cause of every difference:
1. MambaLRP as it is;
2. with its SiLU stabiliser `stabilize` (it divides SiLU(x) by x + 1e-6
   sign(x), where lrp's rule divides by x exactly) made the identity;
3. additionally in float64 throughout: its RMSNorm and `A_log.float()`
   cast to float32 (as transformers does); here those casts are made
   no-ops by running `Tensor.to(float32)` / `Tensor.float()` as identity
   on float64 tensors while MambaLRP's forward runs.

Run: /work/venv/bin/python tools/crosscheck_mambalrp.py /tmp/mambalrp [--lrp target/debug/lrp]
(einops must be installed: MambaLRP imports it.)
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "hf-mamba")


def lrp_relevance(binary, model_dir, ids, target):
    """Token relevance from the lrp binary at eps 0, bias factor 0."""
    out = subprocess.run(
        [
            binary,
            "explain",
            "--model",
            model_dir,
            "--ids",
            ",".join(map(str, ids)),
            "--target",
            str(target),
            "--eps",
            "0",
            "--bias-factor",
            "0",
            "--format",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)["token_relevance"]


@contextlib.contextmanager
def float64_throughout():
    """`x.to(torch.float32)` and `x.float()` leave float64 tensors as they are."""
    original_to, original_float = torch.Tensor.to, torch.Tensor.float

    def to(self, *args, **kwargs):
        if self.dtype == torch.float64 and (torch.float32 in args or kwargs.get("dtype") == torch.float32):
            return self
        return original_to(self, *args, **kwargs)

    def float_(self, *args, **kwargs):
        return self if self.dtype == torch.float64 else original_float(self, *args, **kwargs)

    torch.Tensor.to, torch.Tensor.float = to, float_
    try:
        yield
    finally:
        torch.Tensor.to, torch.Tensor.float = original_to, original_float


def mambalrp_relevance(model, ids, target):
    from mamba_lrp.lrp.utils import relevance_propagation
    from mamba_lrp.model.mamba_huggingface import ModifiedMambaForCausalLM

    modified = ModifiedMambaForCausalLM(model, is_fast_forward_available=False).eval()
    embeddings = model.backbone.embeddings(torch.tensor([ids]))
    relevance, _ = relevance_propagation(
        model=modified,
        embeddings=embeddings,
        targets=torch.tensor([target]),
        n_classes=model.config.vocab_size,
    )
    return relevance[0].tolist()


def worst(ours, theirs):
    scale = max(abs(v) for v in ours)
    return max(abs(a - b) for a, b in zip(ours, theirs)) / scale


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mambalrp", help="directory holding MambaLRP's mamba_lrp package")
    parser.add_argument("--lrp", default=os.path.join(ROOT, "target", "debug", "lrp"))
    args = parser.parse_args()
    sys.path.insert(0, args.mambalrp)
    import mamba_lrp.lrp.core as core
    from transformers import MambaForCausalLM

    with open(os.path.join(FIXTURES, "expected.json")) as f:
        expected = json.load(f)
    original_stabilize = core.stabilize
    worst_by_run = {"as it is": 0.0, "no SiLU stabiliser": 0.0, "no stabiliser, float64 throughout": 0.0}
    for name in ["tiny", "untied-bias"]:
        model_dir = os.path.join(FIXTURES, name)
        model = MambaForCausalLM.from_pretrained(model_dir, dtype=torch.float64).eval()
        for case in expected[name]:
            ids, target = case["ids"], case["target"]
            ours = lrp_relevance(args.lrp, model_dir, ids, target)
            runs = {}
            core.stabilize = original_stabilize
            runs["as it is"] = mambalrp_relevance(model, ids, target)
            core.stabilize = lambda z: z
            runs["no SiLU stabiliser"] = mambalrp_relevance(model, ids, target)
            with float64_throughout():
                runs["no stabiliser, float64 throughout"] = mambalrp_relevance(model, ids, target)
            core.stabilize = original_stabilize
            for run, theirs in runs.items():
                err = worst(ours, theirs)
                worst_by_run[run] = max(worst_by_run[run], err)
                print(f"{name} {ids} target {target}, {run}: max |lrp - MambaLRP| / max |R| = {err:.2e}")
    print()
    for run, err in worst_by_run.items():
        print(f"worst, {run}: {err:.2e}")


if __name__ == "__main__":
    main()
