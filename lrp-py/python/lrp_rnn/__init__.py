"""Layer-wise Relevance Propagation for recurrent networks, from Python.

``lrp_rnn`` is the Python face of lrp: the same models (LSTM, GRU, one or
two directions, stacked layers, attention pooling), the same rules and the
same numbers as the ``lrp`` command, computed by the same Rust code.

    import lrp_rnn
    model = lrp_rnn.Model.default()
    print(model.explain("a gorgeous , witty film .").token_relevance)

A :class:`Model` comes from a model directory (:meth:`Model.load`), the
built-in SST model (:meth:`Model.default`) or a PyTorch module or dict of
tensors (:meth:`Model.from_torch`, whose model :meth:`Model.save` writes as
a directory the CLI reads). :meth:`Model.explain` returns one
:class:`Explanation` per input, whose attributes are the keys of the CLI's
JSON output. Bad input raises ``ValueError`` (``TypeError`` for an argument
of the wrong type, ``OSError`` for a file that cannot be read) with a
one-line message, the one ``lrp`` prints where the CLI has the same check.
Computation runs with the GIL released, on all cores (``RAYON_NUM_THREADS``
caps them); Ctrl-C interrupts it. Neither torch nor ray is imported here;
:mod:`lrp_rnn.ray` scales out on Ray Data.
"""

from __future__ import annotations

import copy
import json
import numbers
import os
import sys

import numpy as np

from . import _modules, _native

__all__ = ["Model", "Explanation"]

_ARCHITECTURE = (
    "cell",
    "input_size",
    "hidden_size",
    "num_layers",
    "bidirectional",
    "attention",
    "attention_size",
    "head_input",
    "task",
    "num_classes",
    "head_bias",
    "embedding",
    "vocab_size",
    "front",
)


class Explanation:
    """One input's explanation: the keys of ``lrp explain``'s JSON as attributes.

    Arrays are numpy float64 (float32 for a model loaded with
    ``precision="f32"``); keys the CLI leaves out are ``None`` here.

    Attributes:
        scores: class scores ``[C]``.
        predicted: the class with the highest score.
        target: the class explained.
        method: ``"lrp"``, ``"sa"``, ``"gi"``, ``"occlusion"`` or ``"ig"``.
        token_relevance: relevance per position ``[T]``.
        initial_state_relevance: LRP only: relevance that reached the initial states.
        unexplained_relevance: LRP only: relevance dropped at zero denominators.
        input_relevance: ``[T, E]``, with ``per_dimension=True``.
        attention: attention weights ``[T]``, for a head on the attention context.
        tokens: the words, for text input.
        unknown: positions of words not in the vocabulary, for text input.
    """

    __slots__ = (
        "scores",
        "predicted",
        "target",
        "method",
        "token_relevance",
        "initial_state_relevance",
        "unexplained_relevance",
        "input_relevance",
        "attention",
        "tokens",
        "unknown",
        "_record",
    )

    def __init__(self, record: dict, dtype=np.float64):
        def array(key):
            value = record.get(key)
            return None if value is None else np.asarray(value, dtype=dtype)

        self._record = record
        self.scores = array("scores")
        self.predicted = record["predicted"]
        self.target = record["target"]
        self.method = record["method"]
        self.token_relevance = array("token_relevance")
        self.initial_state_relevance = record.get("initial_state_relevance")
        self.unexplained_relevance = record.get("unexplained_relevance")
        self.input_relevance = array("input_relevance")
        self.attention = array("attention")
        self.tokens = record.get("tokens")
        self.unknown = record.get("unknown")

    def to_dict(self) -> dict:
        """The explanation as ``lrp explain --format json`` prints it (a fresh copy)."""
        return copy.deepcopy(self._record)

    def __repr__(self) -> str:
        return (
            f"Explanation(method={self.method!r}, predicted={self.predicted}, "
            f"target={self.target}, positions={len(self.token_relevance)})"
        )


class Model:
    """A recurrent classifier lrp can explain.

    Build one with :meth:`load`, :meth:`default` or :meth:`from_torch`. A
    model is immutable and may be shared between threads.
    """

    __slots__ = ("_native", "_config", "_saved")

    def __init__(self, native):
        self._native = native
        self._config = native.config()
        # What save() writes: (config.json's text, the tensors, vocab.txt's
        # text, whether in float64); only a model made by from_torch has it.
        self._saved = None

    @classmethod
    def load(cls, path, *, precision: str = "f64") -> "Model":
        """The model directory at ``path`` (``docs/model-format.md``): config.json,
        weights and, for text models, vocab.txt.

        ``precision`` is ``"f64"`` (exact) or ``"f32"`` (faster), as
        ``lrp explain --precision``. Raises ``OSError`` for a file that
        cannot be read, ``ValueError`` for an invalid model.
        """
        return cls(_native.NativeModel.load(os.fspath(path), precision))

    @classmethod
    def default(cls, *, precision: str = "f64") -> "Model":
        """The built-in SST model of ``lrp explain "TEXT"``: a bidirectional LSTM
        with context attention, five sentiment classes, reading text."""
        return cls(_native.NativeModel.load(None, precision))

    @classmethod
    def from_torch(
        cls,
        module,
        *,
        vocab=None,
        unk_token=None,
        lowercase=None,
        labels=None,
        precision: str = "f64",
        trust_forward: bool = False,
        **architecture,
    ) -> "Model":
        """A model from the weights of a PyTorch module or a dict of arrays.

        ``module`` is a module built like ``RecurrentClassifier`` in
        ``tools/pytorch_models.py`` (its ``state_dict()`` is read, and its
        ``config`` dict if it has one); or a torch module of another class
        whose parts are one ``nn.Embedding`` (optional), one ``nn.LSTM`` or
        ``nn.GRU``, one attention module of a kind below (optional) and one
        ``nn.Linear`` head, under any attribute names (found by type:
        ``lrp_rnn._modules.recognise``); or a plain dict of tensors or numpy
        arrays under ``RecurrentClassifier``'s names (``docs/model-format.md``,
        layout ``pytorch``) or under a module's own (``emb.weight``,
        ``lstm.weight_ih_l0``, ..., ``fc.weight``). A part lrp does not
        model raises ``ValueError`` naming it; every error lists the parts
        found and what each was taken for. Tensors are read with
        ``.detach().cpu().numpy()`` when they have it, so torch is never
        imported here.

        ``architecture`` keywords describe the model; what they leave out
        is taken from ``module.config`` and else read off the tensors'
        names and shapes:

        - ``cell``: ``"lstm"`` or ``"gru"`` (from ``encoder.weight_hh_l0``: 4H or 3H rows);
        - ``input_size``, ``hidden_size``, ``num_layers``, ``bidirectional``;
        - ``attention``: ``None``, ``"context"``, ``"additive"``, ``"dot"`` or
          ``"general"`` (``"dot"`` has no tensors: give it), ``attention_size``;
        - ``head_input``: ``"last"``, ``"context"`` or ``"context+last"`` (from
          the width of ``head.weight``; ``"context"`` when there is attention),
          or ``"mean"``, ``"max"``, ``"each"`` (a per-step head), which the
          tensors cannot tell from ``"last"`` (the final states ``h_n``,
          ``torch.cat((h_n[-2], h_n[-1]), 1)`` for two directions): give
          them, or let ``trust_forward=True`` try ``"mean"`` and ``"max"``;
        - ``task``: ``"classification"`` (the default) or ``"regression"``;
        - ``num_classes``, ``head_bias``;
        - ``embedding``, ``vocab_size`` (from ``embedding.weight``).

        ``vocab`` (a list of str: entry k names embedding row k), ``unk_token``
        and ``lowercase`` let a model with an embedding read text; ``labels``
        names the classes. A vocabulary entry must be a non-empty str without
        a line break (``\\n``, ``\\r``), as a line of ``vocab.txt`` holds it;
        a duplicate reads as its first occurrence, as in ``vocab.txt``.

        Only the weights are read, so a module is accepted only when its class
        is exactly ``RecurrentClassifier`` (not a subclass, whose ``forward``
        may compute something else with the same weights). For another module,
        ``trust_forward=True`` runs its ``forward`` on probe inputs (in
        ``eval()`` mode, restored afterwards) and accepts it only when its
        scores equal the model's within a tolerance for the weights' float
        type (``TOLERANCE``); ``forward`` must take one unbatched input (``[T]``
        token ids or ``[T, E]`` vectors, as ``RecurrentClassifier``) or a batch
        of one (``[1, T]``, or ``[T, 1]`` time first), and return the scores
        first. A dict of tensors is read as given. Everything is checked as
        a model directory is; a problem raises ``ValueError`` (``TypeError``
        for an argument of the wrong type). :meth:`save` writes the model as
        a directory.
        """
        unknown = sorted(set(architecture) - set(_ARCHITECTURE))
        if unknown:
            raise ValueError(
                f"unknown architecture keyword {unknown[0]!r} (known: {', '.join(_ARCHITECTURE)})"
            )
        is_module = hasattr(module, "state_dict")
        recognised = None
        if is_module and _modules.is_torch_module(module) and not _is_known_class(module):
            # A module of the user's own class: its parts by type, under any names.
            recognised = _modules.recognise(module)
            if recognised.problems:
                raise ValueError(f"from_torch: {recognised.problems[0]}; {recognised.summary()}")
            if not trust_forward:
                _check_known_class(module, recognised)
            originals = dict(recognised.tensors)
        else:
            if is_module and not trust_forward:
                _check_known_class(module)
            state = module.state_dict() if is_module else module
            if not hasattr(state, "items"):
                raise TypeError("from_torch reads a module with state_dict() or a dict of tensors or arrays")
            originals = {str(name): value for name, value in state.items()}
            if "encoder.weight_ih_l0" not in originals and any(n.endswith("weight_ih_l0") for n in originals):
                # A state_dict of a module with other attribute names.
                recognised = _modules.recognise_names(originals)
                if recognised.problems:
                    raise ValueError(f"from_torch: {recognised.problems[0]}; {recognised.summary()}")
                originals = dict(recognised.tensors)
        tensors = {name: _float64(value, f"tensor {name}") for name, value in originals.items()}
        module_config = getattr(module, "config", None) or {}
        if recognised is not None and not isinstance(module_config, dict):
            module_config = {}  # a config object of the user's own, not RecurrentClassifier's dict
        if not isinstance(module_config, dict):
            raise TypeError(f"from_torch: the module's config is a dict, not {type(module_config).__name__}")
        given = _flatten(module_config)
        if recognised is not None:
            given.update(recognised.architecture)
        given.update(architecture)
        unk_token = module_config.get("unk_token") if unk_token is None else unk_token
        lowercase = module_config.get("lowercase") if lowercase is None else lowercase
        labels = module_config.get("labels") if labels is None else labels
        text = None if vocab is None else _vocab_text(vocab)
        found = recognised.summary() if recognised is not None else _tensor_summary(tensors)
        arch = _infer(tensors, given)
        # What the head reads, when the weights cannot tell (a head as wide
        # as the final states, no attention): the final states h_n, unless
        # given, or unless trust_forward finds the module's forward reads
        # the mean or maximum over positions instead.
        heads = [arch.get("head_input")]
        if (is_module and trust_forward and "head_input" not in given and arch.get("head_input") == "last"
                and not arch.get("attention")):
            heads = ["last", "mean", "max"]
        failure = None
        for head in heads:
            arch["head_input"] = head
            try:
                config = _config(arch, vocab, unk_token, lowercase, labels)
                config_json = json.dumps(config, default=_json_number)
                native = _native.NativeModel.from_tensors(config_json, list(tensors.items()), text, precision)
            except ValueError as e:
                raise ValueError(f"{e}; {found}") from None
            model = cls(native)
            model._saved = (config_json, list(tensors.items()), text, _widest_float(originals) == 8)
            if not (is_module and trust_forward):
                return model
            try:
                _check_forward(module, model, tensors, _weights_dtype(originals))
                return model
            except ValueError as e:
                failure = failure or e
        message = str(failure)
        if recognised is not None and recognised.recurrent is not None and len(heads) > 1:
            message += (
                f" with the head on the final states h_n, their mean or their maximum over positions: lrp "
                f"explains a head on h_n (for a 2-layer bidirectional encoder, torch.cat((h_n[-2], h_n[-1]), 1))"
                + (", not on out[:, -1], whose backward half has read one position"
                   if recognised.recurrent.bidirectional else "")
                + f"; {found}"
            )
        raise ValueError(message)

    def save(self, path) -> list:
        """Writes the model as the model directory ``path`` (created if
        needed): ``config.json``, ``model.safetensors`` and, with a
        vocabulary, ``vocab.txt`` (``docs/model-format.md``), which ``lrp
        explain --model``, ``lrp serve``, :meth:`load` and
        :func:`lrp_rnn.ray.explain_dataset` read. The weights are written in
        float64 when any tensor given to :meth:`from_torch` was (or was not
        a float array), else in float32: either way exactly as given. The
        files are staged beside their targets and renamed into place
        together, ``config.json`` last. Returns the paths written.

        Only a model made by :meth:`from_torch` is saved this way; a model
        from :meth:`load` already is a directory (copy it), and the
        built-in one is ``lrp``'s default. Raises ``OSError`` when a file
        cannot be written, ``ValueError`` when ``path`` is not a directory.
        """
        if self._saved is None:
            raise ValueError("save() writes a model made by from_torch; this one was loaded from a directory "
                             "(copy that directory) or is the built-in model")
        config_json, tensors, text, double = self._saved
        files = _native.save_model_dir(os.fspath(path), config_json, tensors, text, double)
        return [os.fspath(f) for f in files]

    @property
    def config(self) -> dict:
        """The model's config.json, every key with its default filled in (a copy)."""
        return copy.deepcopy(self._config)

    @property
    def labels(self):
        """The class names, or ``None``."""
        return self._config.get("labels")

    @property
    def precision(self) -> str:
        """``"f64"`` or ``"f32"``: the arithmetic the model computes in."""
        return self._native.precision()

    def explain(
        self,
        inputs,
        *,
        method: str = "lrp",
        target=None,
        eps: float = 0.001,
        bias_factor: float = 0.0,
        composite: str = "epsilon",
        gate_rule: str = "signal-take-all",
        per_dimension: bool = False,
        steps: int = 50,
        max_work=None,
        max_memory=None,
    ):
        """Explains the model's score for each input.

        ``inputs`` is one text (``str``, for a model with a vocabulary), one
        array ``[T, E]``, or a list of either (they may be mixed); the
        result is one :class:`Explanation`, or a list in input order. The
        keywords are the flags of ``lrp explain``: ``method`` (``lrp``,
        ``sa``, ``gi``, ``occlusion``, ``ig``), ``target`` (default: the
        predicted class), ``eps``, ``bias_factor``, ``composite`` (a rule
        preset), ``gate_rule``, ``per_dimension`` (also ``input_relevance``)
        and ``steps`` (of integrated gradients). Every input is costed
        before any runs, as ``lrp explain`` costs it: ``max_work`` (in
        position-passes, default 2,000,000) and ``max_memory`` (bytes,
        default 2 GiB) are ``--max-work`` and ``--max-memory``; an input
        over either raises ``ValueError`` naming it.

        A list is explained as ``lrp explain --input`` explains a file:
        sorted by length, in packed batches, on all cores, with the GIL
        released; Ctrl-C interrupts it (``KeyboardInterrupt``). The first
        failing input, in input order, raises ``ValueError`` with the CLI's
        message. An array holds real numbers: float16, float32, float64 or
        integers; bool, complex, datetime, string, object and structured
        arrays raise ``TypeError`` naming their dtype.
        """
        batch, single = _batch(inputs)
        if target is not None:
            target = _whole(target, "target")
        records = self._native.explain(
            batch,
            str(method),
            target,
            _real(eps, "eps"),
            _real(bias_factor, "bias_factor"),
            str(composite),
            str(gate_rule),
            bool(per_dimension),
            _whole(steps, "steps"),
            None if max_work is None else _whole(max_work, "max_work"),
            None if max_memory is None else _whole(max_memory, "max_memory"),
        )
        dtype = np.float32 if self.precision == "f32" else np.float64
        explanations = [Explanation(record, dtype) for record in records]
        return explanations[0] if single else explanations

    def forward(self, inputs):
        """The class scores ``[C]`` of one input, or a list of them in input order
        (inputs as for :meth:`explain`)."""
        batch, single = _batch(inputs)
        dtype = np.float32 if self.precision == "f32" else np.float64
        scores = [np.asarray(s, dtype=dtype) for s in self._native.forward(batch)]
        return scores[0] if single else scores

    def __repr__(self) -> str:
        encoder = self._config["encoder"]
        return (
            f"Model(cell={encoder['cell']!r}, input_size={encoder['input_size']}, "
            f"hidden_size={encoder['hidden_size']}, num_classes={self._config['head']['num_classes']}, "
            f"precision={self.precision!r})"
        )


def _whole(value, name: str) -> int:
    """``value`` as an int, or ValueError naming ``name`` (its range is
    checked by the native module, which takes ints of any size)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return int(value)


def _real(value, name: str) -> float:
    """``value`` as a float: TypeError for what is not a real number,
    ValueError for an int too large for a float (the rules check the rest)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, not {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} is too large for a float64: {value!r:.60}") from None


def _batch(inputs):
    """The inputs as a list for the native module, and whether one was given."""
    single = isinstance(inputs, str) or not isinstance(inputs, (list, tuple))
    items = [inputs] if single else list(inputs)
    for k, item in enumerate(items):
        if item is None:
            raise TypeError(f"input {k} is None, not a text or an array")
    batch = [item if isinstance(item, str) else _float64(item, f"input {k}") for k, item in enumerate(items)]
    return batch, single


#: The element types an array may have: real numbers, all exact in float64
#: except integers beyond 2**53, which round as numpy rounds them.
REAL_KINDS = {"f": "float16, float32 or float64", "i": "integers", "u": "unsigned integers"}


def _float64(value, what: str):
    """A tensor or array-like as a C-ordered numpy float64 array (torch through
    ``.detach().cpu().numpy()``, never imported). Only real numbers convert:
    a complex number would lose its imaginary part, a date would become a
    count of days, a bool or string is no measurement; those raise
    TypeError naming ``what`` and the dtype. So does a float wider than
    float64, which would round."""
    if hasattr(value, "detach"):
        value = value.detach()
    if hasattr(value, "cpu"):
        value = value.cpu()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: not an array of numbers: {_first_line(e)}") from None
    dtype = array.dtype
    if dtype.kind not in REAL_KINDS or (dtype.kind == "f" and dtype.itemsize > 8):
        raise TypeError(
            f"{what}: an array of {dtype} is not accepted (only real numbers: float16, float32, "
            f"float64 or integers; convert it explicitly, e.g. with .astype(np.float64))"
        )
    return np.ascontiguousarray(array, dtype=np.float64)


def _first_line(error: Exception) -> str:
    """The first line of an exception's message."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _json_number(value):
    """``json.dumps``'s fallback: numpy scalars as Python numbers."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"from_torch: a value of type {type(value).__name__} cannot be part of a config")


def _vocab_text(vocab) -> str:
    """``vocab`` as the text of a vocab.txt (a token a line), or an error
    naming the first entry such a file cannot hold where it stands."""
    if isinstance(vocab, (str, bytes, dict)) or not isinstance(vocab, (list, tuple)):
        raise TypeError(
            f"vocab is a list of str (entry k names embedding row k), not {type(vocab).__name__}"
            + ("; for a dict word -> row, pass sorted(d, key=d.get)" if isinstance(vocab, dict) else "")
        )
    for k, word in enumerate(vocab):
        if not isinstance(word, str):
            raise TypeError(f"vocab entry {k} is a {type(word).__name__}, not a str")
        if word == "":
            # No text names the empty word, and alone it would be no line at all.
            raise ValueError(f"vocab entry {k} is empty")
        if "\n" in word or "\r" in word:
            # A line break would split the entry, shifting every row after it.
            raise ValueError(f"vocab entry {k} holds a line break: {word!r:.60}")
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"vocab entry {k} is not valid Unicode text: {word!r:.60}") from None
    return "".join(f"{word}\n" for word in vocab)


#: The classes whose forward pass the model reproduces, by module and name:
#: tools/pytorch_models.py's RecurrentClassifier, imported as a top-level
#: module or from a package.
KNOWN_CLASSES = {("pytorch_models", "RecurrentClassifier")}


def _is_known_class(module) -> bool:
    """Whether ``module``'s class is exactly a known one and its ``forward``
    is the class's own."""
    kind = type(module)
    where = kind.__module__.rsplit(".", 1)[-1]
    return (where, kind.__qualname__) in KNOWN_CLASSES and "forward" not in getattr(module, "__dict__", {})


def _check_known_class(module, recognised=None) -> None:
    """TypeError unless ``module``'s class is exactly a known one and its
    ``forward`` is the class's own; the message lists the parts
    ``recognised`` (a torch module of another class)."""
    if _is_known_class(module):
        return
    kind = type(module)
    parts = f"; {recognised.summary()}" if recognised is not None else ""
    raise TypeError(
        f"from_torch reads the weights of RecurrentClassifier (tools/pytorch_models.py) as they are, not of "
        f"{kind.__module__}.{kind.__qualname__}, whose forward may use them otherwise: pass trust_forward=True "
        f"to run its forward on probe inputs and compare (it also finds what the head reads){parts}"
    )


def _tensor_summary(tensors: dict) -> str:
    """The tensors given, for a one-line message: their names and shapes."""
    shown = [f"{name} {list(value.shape)}" for name, value in list(tensors.items())[:12]]
    more = ", ..." if len(tensors) > 12 else ""
    return f"found {', '.join(shown) or 'no tensors'}{more}"


def _dtype_of(value):
    """The numpy dtype of a tensor or array as given (torch's by its name),
    or None for a value without one (a list)."""
    dtype = getattr(value, "dtype", None)
    try:
        return np.dtype(str(dtype).removeprefix("torch.")) if dtype is not None else None
    except TypeError:
        return None


def _widest_float(tensors: dict) -> int:
    """The bytes of the widest float among the tensors as given (8 for one
    without a float dtype, such as a list, which reads as float64)."""
    widths = [dtype.itemsize if dtype is not None and dtype.kind == "f" else 8
              for dtype in map(_dtype_of, tensors.values())]
    return max(widths, default=8)


#: The largest difference trust_forward accepts between the module's
#: scores and the model's, relative to the largest score (at least 1), by
#: the narrowest float type among the module's weights: a few hundred
#: roundings of that type.
TOLERANCE = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4, np.dtype(np.float16): 3e-2}


def _weights_dtype(tensors: dict):
    """The narrowest float type among the tensors as given (float64 if none)."""
    narrowest = np.dtype(np.float64)
    for dtype in map(_dtype_of, tensors.values()):
        if dtype is not None and dtype.kind == "f" and dtype.itemsize < narrowest.itemsize:
            narrowest = dtype
    return narrowest


#: Lengths of the probe inputs trust_forward runs.
PROBE_LENGTHS = (1, 6, 17)


def _check_forward(module, model: "Model", tensors: dict, dtype) -> None:
    """ValueError unless ``module``'s forward gives the model's scores on
    probe inputs (seeded random vectors, or token ids for a model with an
    embedding, which the model reads as their embedding rows), within
    ``TOLERANCE[dtype]``."""
    config = model.config
    width = _input_width(config)
    shortest = _shortest_input(config.get("front") or [])
    rng = np.random.default_rng(20240611)
    tolerance = TOLERANCE.get(dtype, TOLERANCE[np.dtype(np.float16)])
    training = getattr(module, "training", None)
    if training:
        module.eval()
    try:
        for length in (shortest - 1 + n for n in PROBE_LENGTHS):
            if config.get("embedding"):
                probe = rng.integers(0, config["vocab_size"], size=length)
                ours = model.forward(tensors["embedding.weight"][probe])
            else:
                probe = rng.standard_normal((length, width))
                ours = model.forward(probe)
            difference = min(float(np.max(np.abs(theirs - ours))) for theirs in _module_scores(module, probe, dtype, len(ours)))
            allowed = tolerance * max(1.0, float(np.max(np.abs(ours))))
            if not difference <= allowed:
                raise ValueError(
                    f"from_torch: the module's forward is not the model's: on a probe input of {length} "
                    f"positions their scores differ by up to {difference:.3g} (allowed {allowed:.3g} "
                    f"for {dtype} weights)"
                )
    finally:
        if training:
            module.train()


def _input_width(config: dict) -> int:
    """The width of the model's input vectors: the first convolution's
    ``in_channels`` when the config has a front end, else the encoder's."""
    convs = [layer for layer in config.get("front") or [] if layer.get("kind") == "conv1d"]
    return convs[0]["in_channels"] if convs else config["encoder"]["input_size"]


def _shortest_input(front: list) -> int:
    """The fewest positions the front end leaves a position of (1 without
    one): what the probe inputs start from."""

    def length_after(t: int) -> int:
        for layer in front:
            if layer["kind"] == "relu":
                continue
            stride = layer.get("stride") or layer["kernel_size"]
            reach = layer.get("dilation", 1) * (layer["kernel_size"] - 1) + 1
            padded = t + 2 * layer.get("padding", 0)
            t = 0 if padded < reach else (padded - reach) // stride + 1
        return t

    t = 1
    while length_after(t) < 1 and t < 1 << 16:
        t += 1
    return t


def _module_scores(module, probe, dtype, classes: int):
    """The scores ``[C]`` the module's forward gives for one probe input, one
    array for each way of calling it that runs: unbatched, as a batch of one
    (``[1, T]``, ``batch_first``) and as a batch of one ``[T, 1]`` (time
    first); the first output if it returns several; the last position's of
    a per-step head."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(module, torch.nn.Module):
        if probe.dtype.kind == "f":
            probe = torch.as_tensor(probe, dtype=getattr(torch, str(dtype)))
        else:
            probe = torch.as_tensor(probe, dtype=torch.long)
        no_grad = torch.no_grad
    else:
        probe = probe.astype(dtype) if probe.dtype.kind == "f" else probe
        no_grad = _NoContext
    failures, results = [], []
    for layout, call in (("unbatched", lambda: probe), ("as a batch of one", lambda: probe[None]),
                         ("as a batch of one, time first", lambda: probe[:, None])):
        try:
            with no_grad():
                output = module(call())
            if isinstance(output, (tuple, list)):
                output = output[0]
            scores = _float64(output, "the module's forward output").ravel()
        except Exception as e:  # the module's own code: any exception means it cannot run the probe
            failures.append(f"{layout}: {type(e).__name__}: {_first_line(e)}")
            continue
        if scores.size % classes == 0 and scores.size > 0:
            results.append(scores[-classes:])
        else:
            failures.append(f"{layout}: it returned {scores.size} values, not {classes} per position")
    if results:
        return results
    raise ValueError(
        f"from_torch: trust_forward cannot run the module's forward on a probe input ({'; '.join(failures)})"
    )


class _NoContext:
    """A context manager that does nothing (torch.no_grad's stand-in)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _flatten(config: dict) -> dict:
    """The architecture keywords a RecurrentClassifier config dict sets."""

    def part(key):
        value = config.get(key)
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"from_torch: the module's config[{key!r}] is a dict, not {type(value).__name__}")
        return value

    flat = {}
    encoder = part("encoder") or {}
    for key in ("cell", "input_size", "hidden_size", "num_layers", "bidirectional"):
        if key in encoder:
            flat[key] = encoder[key]
    if "attention" in config:
        attention = part("attention")
        flat["attention"] = None if attention is None else attention.get("kind")
        if attention is not None and attention.get("size") is not None:
            flat["attention_size"] = attention["size"]
    head = part("head") or {}
    for key, name in (
        ("input", "head_input"),
        ("task", "task"),
        ("num_classes", "num_classes"),
        ("bias", "head_bias"),
    ):
        if key in head:
            flat[name] = head[key]
    for key in ("embedding", "vocab_size"):
        if key in config:
            flat[key] = config[key]
    return flat


def _infer(tensors: dict, given: dict) -> dict:
    """``given`` completed with what the tensors' names and shapes say."""
    arch = dict(given)

    def shape(name):
        return tensors[name].shape if name in tensors else None

    def rows(name):
        """The first dimension of tensor ``name``, if it has one (the
        model's checks report a tensor of the wrong shape)."""
        dims = shape(name)
        return dims[0] if dims else None

    if "embedding" not in arch:
        arch["embedding"] = "embedding.weight" in tensors
    if arch["embedding"] and rows("embedding.weight") is not None:
        arch.setdefault("vocab_size", rows("embedding.weight"))
    w_ih, w_hh = shape("encoder.weight_ih_l0"), shape("encoder.weight_hh_l0")
    if w_hh is not None and len(w_hh) == 2 and w_hh[1] > 0:
        arch.setdefault("hidden_size", w_hh[1])
        arch.setdefault("cell", {4: "lstm", 3: "gru"}.get(w_hh[0] // w_hh[1]))
    if w_ih is not None and len(w_ih) == 2:
        arch.setdefault("input_size", w_ih[1])
    layers = 0
    while f"encoder.weight_ih_l{layers}" in tensors:
        layers += 1
    arch.setdefault("num_layers", max(layers, 1))
    arch.setdefault("bidirectional", "encoder.weight_ih_l0_reverse" in tensors)
    if "attention" not in arch:
        kinds = {"attention.proj.weight": "context", "attention.key.weight": "additive",
                 "attention.bilinear.weight": "general"}
        arch["attention"] = next((kind for name, kind in kinds.items() if name in tensors), None)
    if arch["attention"] in ("context", "additive") and "attention_size" not in arch:
        name = "attention.proj.weight" if arch["attention"] == "context" else "attention.key.weight"
        if rows(name) is not None:
            arch["attention_size"] = rows(name)
    head = shape("head.weight")
    if head is not None and len(head) == 2:
        arch.setdefault("num_classes", head[0])
        if "head_input" not in arch and isinstance(arch.get("hidden_size"), int):
            width = arch["hidden_size"] * (2 if arch["bidirectional"] else 1)
            arch["head_input"] = (
                "context+last" if head[1] == 2 * width else "context" if arch["attention"] else "last"
            )
    arch.setdefault("head_bias", "head.bias" in tensors)
    arch.setdefault("head_input", "context" if arch["attention"] else "last")
    return arch


def _config(arch: dict, vocab, unk_token, lowercase, labels) -> dict:
    """The config.json of a model with architecture ``arch`` (the model checks it)."""
    missing = [key for key in ("cell", "input_size", "hidden_size", "num_classes") if arch.get(key) is None]
    if missing:
        raise ValueError(f"from_torch: give {missing[0]}= (the tensors do not say it)")
    config = {
        "format": "lrp-model",
        "version": 1,
        "layout": "pytorch",
        "weights": "model.safetensors",
        "encoder": {
            "cell": arch["cell"],
            "input_size": arch["input_size"],
            "hidden_size": arch["hidden_size"],
            "num_layers": arch["num_layers"],
            "bidirectional": arch["bidirectional"],
        },
        "attention": None,
        "head": {"input": arch["head_input"], "num_classes": arch["num_classes"], "bias": arch["head_bias"]},
    }
    if arch.get("task") is not None:
        config["head"]["task"] = arch["task"]
    if arch["attention"] is not None:
        config["attention"] = {"kind": arch["attention"], "size": arch.get("attention_size")}
    if arch.get("front"):
        config["front"] = list(arch["front"])
    if arch.get("embedding"):
        config["embedding"] = True
        config["vocab_size"] = arch.get("vocab_size")
    if vocab is not None:
        config["vocab"] = "vocab.txt"
    if unk_token is not None:
        config["unk_token"] = unk_token
    if lowercase is not None:
        config["lowercase"] = bool(lowercase)
    if labels is not None:
        config["labels"] = list(labels)
    return config
