"""The parts of a PyTorch module as people write it, recognised by type.

:meth:`lrp_rnn.Model.from_torch` reads a module of any class whose parts
lrp models: one ``nn.Embedding`` (optional), or a convolutional front end
over time (``nn.Conv1d``, ``nn.ReLU`` and ``nn.MaxPool1d`` modules, in the
order they are applied, e.g. in one ``nn.Sequential``; optional), one
``nn.LSTM`` or ``nn.GRU``
(any layers, one or two directions, ``batch_first`` either way), one
attention module of a documented kind (optional) and one ``nn.Linear``
head, under any attribute names. :func:`recognise` walks
``named_modules()``, identifies each part by its type (and an attention
module by its parameters), and renames its tensors to the ``pytorch``
layout's names (``embedding.weight``, ``encoder.weight_ih_l0``, ...,
``head.weight``), which the rest of ``from_torch`` reads.
:func:`recognise_names` does the same for a bare ``state_dict()`` by the
tensors' names and shapes. tools/pytorch_models.py's ``export`` calls
``from_torch`` too, so this is the one place where parts are recognised.

What the weights cannot say is left to ``from_torch``'s keywords, or to
its ``trust_forward=True`` (which runs the module's ``forward`` and picks
what the head reads). torch is never imported here: the types are taken
from the ``torch`` the caller has already imported.
"""

from __future__ import annotations

import sys

import numpy as np

#: The words of an attribute or class name that mark an attention module
#: (a module with one square ``nn.Linear`` is a general attention only then;
#: without them it is part of the head).
ATTENTION_WORDS = ("att",)


class Recognised:
    """What :func:`recognise` found.

    Attributes:
        tensors: the tensors under the ``pytorch`` layout's names
            (``front.{k}.weight`` for the front end's layer ``k``).
        architecture: ``from_torch`` keywords the parts settle (``attention``
            for a dot attention, which has no tensors).
        notes: one phrase per part: its name, what it is, what it was taken
            for (``"lstm: nn.LSTM(8, 6, num_layers=2, bidirectional) -> the encoder"``).
        problems: what lrp cannot model, one phrase each (empty when all is read).
        recurrent: the ``nn.LSTM``/``nn.GRU`` module, when there is one.
    """

    def __init__(self):
        self.tensors = {}
        self.architecture = {}
        self.notes = []
        self.problems = []
        self.recurrent = None

    def summary(self) -> str:
        """The parts found, for a one-line message."""
        return "found " + ("; ".join(self.notes) if self.notes else "no part lrp reads")


def is_torch_module(module) -> bool:
    """Whether ``module`` is a ``torch.nn.Module`` (only if torch is imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(module, torch.nn.Module)


def _describe(module) -> str:
    """``nn.LSTM(8, 6, num_layers=2, bidirectional)`` and the like."""
    nn = sys.modules["torch"].nn
    kind = type(module).__name__
    if isinstance(module, (nn.LSTM, nn.GRU)):
        extra = "".join(
            [
                f", num_layers={module.num_layers}" if module.num_layers != 1 else "",
                ", bidirectional" if module.bidirectional else "",
                ", batch_first" if module.batch_first else "",
            ]
        )
        return f"nn.{kind}({module.input_size}, {module.hidden_size}{extra})"
    if isinstance(module, nn.Embedding):
        return f"nn.Embedding({module.num_embeddings}, {module.embedding_dim})"
    if isinstance(module, nn.Linear):
        bias = "" if module.bias is not None else ", bias=False"
        return f"nn.Linear({module.in_features}, {module.out_features}{bias})"
    if isinstance(module, nn.Conv1d):
        return f"nn.Conv1d({module.in_channels}, {module.out_channels}, kernel_size={module.kernel_size[0]})"
    if isinstance(module, nn.MaxPool1d):
        return f"nn.MaxPool1d({module.kernel_size})"
    return f"nn.{kind}"


#: Layers that look like a front end's but that lrp does not model.
FRONT_LOOKALIKES = ("Conv2d", "Conv3d", "ConvTranspose1d", "AvgPool1d", "AdaptiveAvgPool1d",
                    "AdaptiveMaxPool1d", "LPPool1d")


def _single(value, what: str, prefix: str, problems: list):
    """A 1-D layer's argument (an int or a tuple of one int) as an int."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            problems.append(f"{prefix}: {what}={value!r} is not one number")
            return None
        value = value[0]
    return int(value)


def _front_layer(prefix: str, m, problems: list):
    """The config entry (``docs/model-format.md``, ``front``) of the front
    end layer ``m`` at ``prefix``; a problem lrp cannot model goes to
    ``problems`` (and None is returned)."""
    nn = sys.modules["torch"].nn
    if isinstance(m, nn.ReLU):
        return {"kind": "relu"}
    if isinstance(m, nn.MaxPool1d):
        if m.ceil_mode:
            problems.append(f"{prefix}: nn.MaxPool1d with ceil_mode=True is not read (lrp rounds down, "
                            f"as ceil_mode=False)")
            return None
        kernel = _single(m.kernel_size, "kernel_size", prefix, problems)
        layer = {"kind": "maxpool1d", "kernel_size": kernel,
                 "stride": _single(m.stride if m.stride is not None else m.kernel_size, "stride", prefix, problems),
                 "padding": _single(m.padding, "padding", prefix, problems),
                 "dilation": _single(m.dilation, "dilation", prefix, problems)}
        return None if None in layer.values() else layer
    # nn.Conv1d
    if m.groups != 1:
        problems.append(f"{prefix}: nn.Conv1d with groups={m.groups} is not read (lrp's conv1d has one group)")
        return None
    if m.padding_mode != "zeros":
        problems.append(f"{prefix}: nn.Conv1d with padding_mode={m.padding_mode!r} is not read "
                        f"(lrp pads with zeros)")
        return None
    kernel, dilation = m.kernel_size[0], m.dilation[0]
    stride = m.stride[0]
    padding = m.padding
    if padding == "valid":
        padding = 0
    elif padding == "same":
        if dilation * (kernel - 1) % 2:
            problems.append(f"{prefix}: nn.Conv1d with padding='same' pads its ends unequally here "
                            f"(dilation x (kernel_size - 1) is odd); lrp pads both ends alike")
            return None
        padding = dilation * (kernel - 1) // 2
    else:
        padding = _single(padding, "padding", prefix, problems)
        if padding is None:
            return None
    return {"kind": "conv1d", "in_channels": m.in_channels, "out_channels": m.out_channels,
            "kernel_size": kernel, "stride": stride, "padding": padding, "dilation": dilation,
            "bias": m.bias is not None}


def _zeros(rows: int, like):
    """A zero bias of ``rows`` values, of the float type of the tensor ``like``."""
    return np.zeros(rows, dtype=str(like.dtype).removeprefix("torch."))


def _owned(path: str, prefix: str) -> bool:
    """Whether the parameter ``path`` belongs to the module at ``prefix``."""
    return prefix == "" or path == prefix or path.startswith(prefix + ".")


def recognise(module) -> Recognised:
    """The parts of the torch module ``module``, by type (see the module's doc)."""
    nn = sys.modules["torch"].nn
    found = Recognised()
    named = [(name, m) for name, m in module.named_modules() if name]
    used = set()  # the paths of the parameters taken

    def take(path, tensor, as_name):
        found.tensors[as_name] = tensor.detach()
        used.add(path)

    # The recurrent encoder: exactly one nn.LSTM or nn.GRU.
    recurrent = [(n, m) for n, m in named if isinstance(m, (nn.LSTM, nn.GRU))]
    unsupported = [(n, m) for n, m in named if isinstance(m, (nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell))]
    for n, m in unsupported:
        found.problems.append(f"{n}: {type(m).__name__} is not read (lrp explains nn.LSTM and nn.GRU)")
    if len(recurrent) > 1:
        names = ", ".join(n for n, _ in recurrent)
        found.problems.append(f"{len(recurrent)} recurrent modules ({names}): lrp reads one nn.LSTM or nn.GRU "
                              f"(stack layers with num_layers=)")
    if recurrent:
        prefix, rnn = recurrent[0]
        found.recurrent = rnn
        found.notes.append(f"{prefix}: {_describe(rnn)} -> the encoder")
        if getattr(rnn, "proj_size", 0):
            found.problems.append(f"{prefix}: an LSTM with proj_size={rnn.proj_size} is not read")
        for name, tensor in rnn.named_parameters():
            take(f"{prefix}.{name}", tensor, f"encoder.{name}")
        if not rnn.bias:
            # bias=False is a zero bias, which the layout stores.
            for name, tensor in rnn.named_parameters():
                if name.startswith("weight_ih"):
                    zero = _zeros(tensor.shape[0], tensor)
                    suffix = name.removeprefix("weight_ih")
                    found.tensors[f"encoder.bias_ih{suffix}"] = zero
                    found.tensors[f"encoder.bias_hh{suffix}"] = zero
    else:
        found.problems.append("no nn.LSTM or nn.GRU")
    width = None if found.recurrent is None else found.recurrent.hidden_size * (1 + found.recurrent.bidirectional)

    # The front end: nn.Conv1d, nn.ReLU and nn.MaxPool1d in the order they
    # were registered (an nn.Sequential's order), each a layer of `front`.
    for n, m in named:
        if type(m).__name__ in FRONT_LOOKALIKES and isinstance(m, nn.Module):
            found.problems.append(f"{n}: nn.{type(m).__name__} is not read (lrp's front end is nn.Conv1d, "
                                  f"nn.ReLU and nn.MaxPool1d)")
    front = []
    for n, m in named:
        if not isinstance(m, (nn.Conv1d, nn.ReLU, nn.MaxPool1d)):
            continue
        layer = _front_layer(n, m, found.problems)
        if layer is None:
            continue
        k = len(front)
        front.append(layer)
        found.notes.insert(len(front) - 1, f"{n}: {_describe(m)} -> front[{k}]")
        if layer["kind"] == "conv1d":
            take(f"{n}.weight", m.weight, f"front.{k}.weight")
            if m.bias is not None:
                take(f"{n}.bias", m.bias, f"front.{k}.bias")
    if front:
        found.architecture["front"] = front

    # The embedding: at most one nn.Embedding.
    embeddings = [(n, m) for n, m in named if isinstance(m, nn.Embedding)]
    if len(embeddings) > 1:
        names = ", ".join(n for n, _ in embeddings)
        found.problems.append(f"{len(embeddings)} embeddings ({names}): lrp reads one")
    if embeddings:
        prefix, emb = embeddings[0]
        found.notes.insert(0, f"{prefix}: {_describe(emb)} -> the embedding")
        if emb.max_norm is not None:
            found.problems.append(f"{prefix}: an embedding with max_norm rescales its rows as it reads them")
        take(f"{prefix}.weight", emb.weight, "embedding.weight")

    # Attention: a module with parameters of its own, or named for attention.
    attention_prefixes = []
    containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    for prefix, m in named:
        if isinstance(m, (nn.LSTM, nn.GRU, nn.Embedding, nn.Linear, nn.Conv1d, nn.ReLU, nn.MaxPool1d) + containers):
            continue
        own = dict(m.named_parameters(recurse=False))
        words = (prefix.rsplit(".", 1)[-1] + " " + type(m).__name__).lower()
        if own or any(w in words for w in ATTENTION_WORDS):
            kind = _attention(prefix, m, width, found, take)
            if kind is not None:
                attention_prefixes.append(prefix)

    # The head: the one nn.Linear left.
    heads = [(n, m) for n, m in named if isinstance(m, nn.Linear)
             and not any(_owned(n, p) for p in attention_prefixes)]
    if len(heads) > 1:
        listed = ", ".join(f"{n} ({_describe(m)})" for n, m in heads)
        found.problems.append(f"{len(heads)} nn.Linear outside attention ({listed}): lrp's head is one nn.Linear "
                              f"on the encoder's output")
    elif not heads:
        found.problems.append("no nn.Linear head")
    else:
        prefix, head = heads[0]
        reads = "reads the encoder's output"
        if width is not None and head.in_features == width and not attention_prefixes:
            reads = "reads the final states h_n (or give head_input=)"
        elif width is not None and head.in_features == 2 * width and attention_prefixes:
            reads = "reads [context; final states]"
        elif width is not None and head.in_features == width:
            reads = "reads the attention context"
        found.notes.append(f"{prefix}: {_describe(head)} -> the head, {head.out_features} classes, {reads}")
        take(f"{prefix}.weight", head.weight, "head.weight")
        if head.bias is not None:
            take(f"{prefix}.bias", head.bias, "head.bias")

    # Every parameter must have been read: one left over computes something lrp does not.
    left = [n for n, _ in module.named_parameters() if n not in used]
    if left:
        shown = ", ".join(left[:6]) + (", ..." if len(left) > 6 else "")
        found.problems.append(f"parameters lrp does not model: {shown}")
    return found


def _attention(prefix, m, width, found, take):
    """Recognises the attention module ``m`` at ``prefix`` (a documented
    kind: context, additive, general, dot); its tensors go to ``found``.
    Returns the kind, or None (its Linears are then left for the head)."""
    nn = sys.modules["torch"].nn
    own = dict(m.named_parameters(recurse=False))
    linears = [(n, c) for n, c in m.named_children() if isinstance(c, nn.Linear)]
    others = [n for n, c in m.named_children()
              if not isinstance(c, nn.Linear) and any(True for _ in c.parameters())]
    if others:
        return None
    if len(linears) == 1 and len(own) == 1:
        (name, proj), (query_name, query) = linears[0], next(iter(own.items()))
        if query.dim() == 1 and query.shape[0] == proj.out_features:
            found.notes.append(f"{prefix}: {type(m).__name__} with {name} ({_describe(proj)}) and {query_name} "
                               f"[{query.shape[0]}] -> context attention")
            take(f"{prefix}.{name}.weight", proj.weight, "attention.proj.weight")
            if proj.bias is not None:
                take(f"{prefix}.{name}.bias", proj.bias, "attention.proj.bias")
            else:
                found.tensors["attention.proj.bias"] = _zeros(proj.out_features, proj.weight)
            take(f"{prefix}.{query_name}", query, "attention.query")
            return "context"
    if len(linears) == 3 and not own:
        scores = [(n, c) for n, c in linears if c.out_features == 1]
        pair = [(n, c) for n, c in linears if c.out_features != 1]
        if len(scores) == 1 and len(pair) == 2 and pair[0][1].weight.shape == pair[1][1].weight.shape:
            # Which of the two reads h_t (the key) and which the final
            # state (the query): by name, else the one with a bias is the key.
            named_query = [p for p in pair if "query" in p[0].lower() or p[0].lower() in ("q", "w_q")]
            if len(named_query) == 1:
                query = named_query[0]
            else:
                without_bias = [p for p in pair if p[1].bias is None]
                query = without_bias[0] if len(without_bias) == 1 else pair[1]
            key = pair[0] if query is pair[1] else pair[1]
            score = scores[0]
            found.notes.append(f"{prefix}: {type(m).__name__} with key {key[0]}, query {query[0]}, score "
                               f"{score[0]} -> additive attention")
            take(f"{prefix}.{key[0]}.weight", key[1].weight, "attention.key.weight")
            key_bias = key[1].bias.detach() if key[1].bias is not None else None
            if query[1].bias is not None:
                # K h + b + Q q + c = K h + (b + c) + Q q: the query's bias joins the key's.
                used_bias = query[1].bias.detach()
                key_bias = used_bias if key_bias is None else key_bias + used_bias
                take(f"{prefix}.{query[0]}.bias", query[1].bias, "attention.query.bias")
                del found.tensors["attention.query.bias"]
            if key[1].bias is not None:
                take(f"{prefix}.{key[0]}.bias", key[1].bias, "attention.key.bias")
            found.tensors["attention.key.bias"] = _zeros(key[1].out_features, key[1].weight) if key_bias is None else key_bias
            take(f"{prefix}.{query[0]}.weight", query[1].weight, "attention.query.weight")
            take(f"{prefix}.{score[0]}.weight", score[1].weight, "attention.score.weight")
            if score[1].bias is not None:
                # The same number added to every position's score: softmax ignores it.
                take(f"{prefix}.{score[0]}.bias", score[1].bias, "attention.score.bias")
                del found.tensors["attention.score.bias"]
            return "additive"
    words = (prefix.rsplit(".", 1)[-1] + " " + type(m).__name__).lower()
    if len(linears) == 1 and not own and any(w in words for w in ATTENTION_WORDS):
        name, bilinear = linears[0]
        if bilinear.in_features == bilinear.out_features and (width is None or bilinear.in_features == width):
            found.notes.append(f"{prefix}: {type(m).__name__} with {name} ({_describe(bilinear)}) -> general attention")
            take(f"{prefix}.{name}.weight", bilinear.weight, "attention.bilinear.weight")
            if bilinear.bias is not None:
                # last . (W h_t + b): last . b is the same at every position.
                take(f"{prefix}.{name}.bias", bilinear.bias, "attention.bilinear.bias")
                del found.tensors["attention.bilinear.bias"]
            return "general"
    if not linears and not own and "dot" in words:
        found.notes.append(f"{prefix}: {type(m).__name__} (no parameters) -> dot attention")
        found.architecture["attention"] = "dot"
        return "dot"
    return None


#: The recurrent tensors' names in a state_dict (``weight_ih_l0`` ...).
RECURRENT_NAMES = ("weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l")


def recognise_names(tensors: dict) -> Recognised:
    """The parts of a bare ``state_dict()`` (names -> arrays) of a module
    with an embedding, one LSTM/GRU and one Linear head under any names:
    the recurrent module by its tensors' names (``*.weight_ih_l0``), the
    embedding as a ``weight`` alone (no bias) whose width is the encoder's
    input, the head as the one other ``weight`` (with its ``bias``)."""
    found = Recognised()
    prefixes = sorted({name[: -len("weight_ih_l0")] for name in tensors if name.endswith("weight_ih_l0")})
    if len(prefixes) != 1:
        found.problems.append(f"{len(prefixes)} tensors named *weight_ih_l0: lrp reads one nn.LSTM or nn.GRU")
        return found
    prefix = prefixes[0]
    groups = {}
    for name, value in tensors.items():
        if name.startswith(prefix) and name[len(prefix):].startswith(RECURRENT_NAMES):
            found.tensors["encoder." + name[len(prefix):]] = value
            continue
        owner, _, leaf = name.rpartition(".")
        groups.setdefault(owner, {})[leaf] = (name, value)
    found.notes.append(f"{prefix.rstrip('.') or '(top)'}.*_l*: the encoder")
    input_size = np.shape(found.tensors.get("encoder.weight_ih_l0", ()))
    input_size = input_size[1] if len(input_size) == 2 else None
    embeddings = [o for o, g in groups.items() if set(g) == {"weight"} and len(np.shape(g["weight"][1])) == 2
                  and np.shape(g["weight"][1])[1] == input_size]
    if len(embeddings) == 1:
        (name, value), = groups.pop(embeddings[0]).values()
        found.tensors["embedding.weight"] = value
        found.notes.append(f"{name} {list(np.shape(value))}: the embedding")
    heads = [o for o, g in groups.items() if "weight" in g and set(g) <= {"weight", "bias"}]
    if len(heads) == 1:
        group = groups.pop(heads[0])
        found.tensors["head.weight"] = group["weight"][1]
        found.notes.append(f"{group['weight'][0]} {list(np.shape(group['weight'][1]))}: the head")
        if "bias" in group:
            found.tensors["head.bias"] = group["bias"][1]
    elif heads:
        found.problems.append(f"{len(heads)} candidate heads ({', '.join(heads)}): lrp's head is one linear layer")
    left = [name for g in groups.values() for name, _ in g.values()]
    if left:
        found.problems.append(f"tensors lrp does not model: {', '.join(left[:6])}")
    return found
