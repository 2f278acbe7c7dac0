#!/usr/bin/env python3
"""Generate the seq2seq PyTorch-parity fixtures in tests/fixtures/seq2seq/.

What it writes (under tests/fixtures/seq2seq/):

  <name>/, <name>-f32/  model directories written by
                        `pytorch_models.export_seq2seq` (float64 weights, and
                        the same weights cast to float32)
  cases.json            per (model, dtype, source, target): the teacher-forced
                        logits [J][Vt] and attention weights [J][S] computed by
                        torch, the greedy decoding (at most 8 steps, stopping
                        at </s>), and the gradient of the last step's logit of
                        its target token with respect to the source vectors
                        [S][Es] and the decoder's input vectors [J][Et]

Models are `Seq2Seq`s from tools/pytorch_models.py; every parameter is
re-initialised uniform(-0.5, 0.5) from a per-model seed.  Run from the repo
root: `python3 tools/make_seq2seq_fixtures.py`.  Needs torch, safetensors,
numpy; never needed by `cargo test` (the files are committed).
"""

import copy
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_models import Seq2Seq, export_seq2seq  # noqa: E402

SEED = 20251115
OUT = os.path.join("tests", "fixtures", "seq2seq")
SOURCE_VOCAB = ["<unk>"] + [f"s{i}" for i in range(11)]
TARGET_VOCAB = ["<s>", "</s>"] + [f"t{i}" for i in range(8)]
GREEDY_STEPS = 8


def config(cell, layers, bi, dec, kind, feeding, init, hidden=4, dec_hidden=5, size=3):
    if kind == "dot":
        dec_hidden = hidden * (2 if bi else 1)
    return {
        "source_vocab_size": len(SOURCE_VOCAB), "target_vocab_size": len(TARGET_VOCAB),
        "target_start": 0, "target_end": 1,
        "encoder": {"cell": cell, "input_size": 3, "hidden_size": hidden, "num_layers": layers,
                    "bidirectional": bi},
        "decoder": {"cell": dec, "input_size": 4, "hidden_size": dec_hidden, "input_feeding": feeding,
                    "init": init},
        "attention": {"kind": kind, "size": size} if kind == "additive" else {"kind": kind},
    }


MODELS = [
    ("lstm-lstm-additive", config("lstm", 1, False, "lstm", "additive", False, "zero")),
    ("bilstm2-lstm-additive-feed-bridge", config("lstm", 2, True, "lstm", "additive", True, "bridge")),
    ("gru-gru-general-feed", config("gru", 1, False, "gru", "general", True, "zero")),
    ("bigru-lstm-dot-bridge", config("gru", 1, True, "lstm", "dot", False, "bridge")),
    ("bilstm-gru-general", config("lstm", 1, True, "gru", "general", False, "bridge")),
    ("gru3-gru-dot-feed", config("gru", 3, False, "gru", "dot", True, "zero")),
]

PAIRS = [([3, 7, 1, 9], [4, 2, 5]), ([5], [3]), ([2, 4, 6, 8, 10, 1, 3], [2, 9, 4, 7, 1])]


def main():
    torch.set_num_threads(1)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    cases = []
    for index, (name, cfg) in enumerate(MODELS):
        torch.manual_seed(SEED + index)
        m64 = Seq2Seq(copy.deepcopy(cfg)).double()
        with torch.no_grad():
            for p in m64.parameters():
                p.uniform_(-0.5, 0.5)
        m64.eval()
        m32 = copy.deepcopy(m64).float().eval()
        export_seq2seq(m64, os.path.join(OUT, name), SOURCE_VOCAB, TARGET_VOCAB, unk_token="<unk>")
        export_seq2seq(m32, os.path.join(OUT, name + "-f32"), SOURCE_VOCAB, TARGET_VOCAB, unk_token="<unk>")
        for k, (source, target) in enumerate(PAIRS):
            for suffix, m, dtype in [("", m64, "f64"), ("-f32", m32, "f32")]:
                src, tgt = torch.tensor(source), torch.tensor(target)
                with torch.no_grad():
                    logits, weights = m(src, tgt)
                src_vec = m.source_embedding(src).detach().clone().requires_grad_(True)
                tgt_vec = m.target_embedding(m.decoder_inputs(tgt)).detach().clone().requires_grad_(True)
                out, _ = m.forward_vectors(src_vec, tgt_vec)
                g_src, g_tgt = torch.autograd.grad(out[-1, target[-1]], [src_vec, tgt_vec])
                cases.append({
                    "name": f"{name}{suffix}-{k}", "model": name + suffix, "dtype": dtype,
                    "source": [SOURCE_VOCAB[i] for i in source], "target": [TARGET_VOCAB[i] for i in target],
                    "logits": logits.tolist(), "attention": weights.tolist(),
                    "greedy": [TARGET_VOCAB[i] for i in greedy(m, src)],
                    "gradient_source": g_src.tolist(), "gradient_target": g_tgt.tolist(),
                })
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        f.write('{"generated_by": "tools/make_seq2seq_fixtures.py",\n')
        f.write(f' "torch_version": {json.dumps(torch.__version__)},\n')
        f.write(' "cases": [\n')
        f.write(",\n".join(json.dumps(c) for c in cases))
        f.write("\n]}\n")
    print(f"wrote {len(cases)} cases")


def greedy(m, src):
    """Greedy decoding by re-running the teacher-forced pass on the prefix."""
    out = []
    with torch.no_grad():
        for _ in range(GREEDY_STEPS):
            logits, _ = m(src, torch.tensor(out + [0]))
            out.append(int(torch.argmax(logits[-1])))
            if out[-1] == m.config["target_end"]:
                break
    return out


if __name__ == "__main__":
    main()
