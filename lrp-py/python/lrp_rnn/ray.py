"""Explain a corpus on a Ray cluster: :func:`explain_dataset`.

Ray is an optional extra (``pip install ./lrp-py[ray]``) and is imported
only here. The work is one ``Dataset.map_batches`` with a callable class:
each actor loads the model once, then explains the batches Ray hands it
with :meth:`lrp_rnn.Model.explain` (packed batches on the actor's cores).
Ray schedules everything; there is no scheduler of lrp's own.

A row the model cannot explain is reported by the row, never as Ray's
multi-line ``RayTaskError`` or ``ActorDiedError``: with ``errors="raise"``
(the default) the dataset's execution raises one ``ValueError`` naming the
row; with ``errors="column"`` the row gets its message in the column
``error`` instead.
"""

from __future__ import annotations

import inspect
import os
import types
import warnings

import numpy as np

__all__ = ["explain_dataset", "start"]

#: The columns :func:`explain_dataset` adds to each row.
OUTPUT_COLUMNS = ("predicted", "scores", "token_relevance", "tokens")

#: The column ``per_dimension=True`` adds: the relevance of each input
#: dimension at each position, a list (one per position) of lists of floats.
PER_DIMENSION_COLUMN = "input_relevance"

#: The column ``errors="column"`` adds: ``None``, or the row's message.
ERROR_COLUMN = "error"

#: What a failing row does: fail the execution, or fill ``error``.
ERRORS = ("raise", "column")


class _Failure(Exception):
    """An error met inside an actor, as it must reach the caller: the
    exception type to raise there and its one-line message. Ray hands it
    back wrapped (``RayTaskError``, with tracebacks); the datasets
    :func:`explain_dataset` returns unwrap it."""

    def __init__(self, kind: str, message: str):
        super().__init__(kind, message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return self.message

    def exception(self) -> Exception:
        """The exception the caller sees."""
        return {"OSError": OSError, "TypeError": TypeError}.get(self.kind, ValueError)(self.message)


def _kind(error: Exception) -> str:
    """The one of ValueError, TypeError, OSError that ``error`` is."""
    for kind in (OSError, TypeError):
        if isinstance(error, kind):
            return kind.__name__
    return "ValueError"


class _Explainer:
    """One actor's model, loaded once; explains one batch per call."""

    def __init__(self, model: str, column: str, reads: str, threads: int, options: dict, errors: str):
        # The actor's share of cores: rayon reads this when the pool starts.
        os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
        from . import Model

        self.column = column
        self.reads = reads
        self.options = options
        self.errors = errors
        # A model that cannot be loaded here fails each batch with its
        # message, instead of killing the actor (an ActorDiedError).
        self.failure = None
        try:
            self.model = Model.default() if model == "default" else Model.load(model)
        except (OSError, ValueError, TypeError) as e:
            self.failure = _Failure(_kind(e), str(e))

    def __call__(self, batch):
        if self.failure is not None:
            raise self.failure
        values = list(batch[self.column])
        n = len(values)
        explanations = [None] * n
        failures = [None] * n
        present = [k for k, value in enumerate(values) if not _missing(value)]
        for k in set(range(n)) - set(present):
            failures[k] = _Failure("ValueError", f"missing {self.reads}: the column {self.column!r} holds no value (None)")
        try:
            for k, e in zip(present, self.model.explain([self._input(values[k]) for k in present], **self.options)):
                explanations[k] = e
        except (OSError, ValueError, TypeError):
            # Which rows fail: one at a time (only for a batch that fails).
            for k in present:
                try:
                    explanations[k] = self.model.explain(self._input(values[k]), **self.options)
                except (OSError, ValueError, TypeError) as e:
                    failures[k] = _Failure(_kind(e), str(e).removeprefix("input 0: "))
        failures = [
            None if f is None else _Failure(f.kind, f"row ({_row_name(batch, k, self.column)}): {f.message}")
            for k, f in enumerate(failures)
        ]
        if self.errors == "raise":
            first = next((f for f in failures if f is not None), None)
            if first is not None:
                raise first
        batch = batch.copy()
        # As objects: a missing class must not turn the others into floats.
        batch["predicted"] = np.array([None if e is None else e.predicted for e in explanations], dtype=object)
        # Plain lists of floats, not numpy arrays: Ray stores arrays in its
        # own tensor type, which Parquet keeps as a struct {data, shape}
        # that pandas without Ray reads back as bytes; a list is Arrow's
        # list<double>, which every reader reads as numbers.
        batch["scores"] = [None if e is None else e.scores.tolist() for e in explanations]
        batch["token_relevance"] = [None if e is None else e.token_relevance.tolist() for e in explanations]
        batch["tokens"] = [None if e is None else e.tokens for e in explanations]
        if self.options.get("per_dimension"):
            batch[PER_DIMENSION_COLUMN] = [None if e is None else e.input_relevance.tolist() for e in explanations]
        if self.errors == "column":
            batch[ERROR_COLUMN] = [None if f is None else f.message for f in failures]
        return batch

    @staticmethod
    def _input(value):
        return value if isinstance(value, str) else np.asarray(value)


def _missing(value) -> bool:
    """Whether a cell holds no value: None, or what pandas puts in a
    missing cell (``pd.NA``, ``NaN``)."""
    import pandas

    return value is None or (np.ndim(value) == 0 and not isinstance(value, str) and bool(pandas.isna(value)))


def _row_name(batch, k: int, column: str) -> str:
    """Row ``k`` of a batch named by its values (Ray gives rows no index):
    up to three scalar columns besides the input, and the text if any."""
    parts = []
    for name in batch.columns:
        value = batch[name].iloc[k]
        if name != column and isinstance(value, (str, int, float, np.integer, np.floating)) and len(parts) < 3:
            parts.append(f"{name}={_short(value)}")
    value = batch[column].iloc[k]
    if isinstance(value, str):
        parts.append(f"{column}={_short(value)}")
    elif hasattr(value, "shape"):
        parts.append(f"{column} of shape {tuple(np.shape(value))}")
    return ", ".join(parts) or f"{column}={_short(value)}"


def _short(value) -> str:
    """A value's repr, at most 60 characters."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def explain_dataset(
    ds,
    model,
    *,
    text_column: str = "text",
    vectors_column=None,
    batch_size: int = 256,
    concurrency=None,
    num_cpus: float = 1,
    errors: str = "raise",
    quiet: bool = True,
    **explain_options,
):
    """Explains every row of a Ray Dataset; returns a new, lazy ``ray.data.Dataset``.

    Args:
        ds: the dataset; each row holds a text in ``text_column``, or an array
            ``[T, E]`` in ``vectors_column`` when that is given.
        model: a model directory path (readable here and on every node), or
            ``"default"`` for the built-in SST model. It is loaded here first,
            so that a bad path, model or option raises at once (``OSError``,
            ``ValueError``, ``TypeError``), before Ray runs anything.
        batch_size: rows per call of an actor.
        concurrency: actors: an int for a fixed pool, ``(min, max)`` for an
            autoscaling one, ``None`` for Ray's default (from one up). A fixed
            pool that takes every CPU leaves none for a reading source's
            tasks (``read_text``, ``read_parquet``): the run then waits
            forever, so leave a CPU free or keep ``None``.
        num_cpus: CPUs reserved per actor; the actor computes on as many
            threads.
        errors: ``"raise"`` (the default: a bad row is a mistake to see, not
            a row to lose quietly) makes the first failing row of a batch stop
            the execution with one ``ValueError`` (``OSError`` for a model
            file a node cannot read) whose message names the row by its
            values (up to three scalar columns, and the text); ``"column"``
            explains the other rows and adds a column ``error``: ``None``,
            or the row's message, whose output columns are then ``None``.
        quiet: ``True`` (the default) keeps Ray from printing on a run that
            succeeds: Ray, if it is not running yet, is started by
            :func:`start`; the dataset prints no execution plan or
            statistics; Ray Data's logger (``ray.data``) is set to warnings
            (on a terminal its progress bars remain). ``False`` leaves Ray's
            logging as Ray sets it. A failing row is still reported, as one
            exception.
        explain_options: the keywords of :meth:`lrp_rnn.Model.explain`
            (``method``, ``target``, ``eps``, ...).

    The result has the input columns plus ``predicted``, ``scores`` (a list
    of floats), ``token_relevance`` (a list of floats, one per position)
    and ``tokens`` (``None`` for vectors), and with ``per_dimension=True``
    ``input_relevance`` (a list of lists of floats, ``[T][E]``), each row's
    values those ``lrp explain`` prints for it: written to Parquet, pandas
    reads them back as lists of numbers, with or without Ray. A missing input (``None``)
    is a failing row. The result is a ``ray.data.Dataset`` (of the same
    class as Ray's) whose methods raise a failing row's error as above,
    and so do the datasets derived from it.
    """
    import ray.data

    from . import Model

    if errors not in ERRORS:
        raise ValueError(f"errors is 'raise' or 'column', not {errors!r:.60}")
    if isinstance(concurrency, tuple) and len(concurrency) != 2:
        raise ValueError(f"concurrency is a number of actors or a pair (min, max), not {concurrency!r:.60}")
    if isinstance(concurrency, tuple):
        compute = ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    elif concurrency is not None:
        compute = ray.data.ActorPoolStrategy(size=int(concurrency))
    else:
        compute = ray.data.ActorPoolStrategy(min_size=1, max_size=None)
    if quiet:
        _quiet_ray()
    model = "default" if model == "default" else os.path.abspath(os.fspath(model))
    # The model and the options, checked here: no actor dies of them.
    (Model.default() if model == "default" else Model.load(model)).explain([], **explain_options)
    column = vectors_column if vectors_column is not None else text_column
    with warnings.catch_warnings():
        # max_restarts has no named parameter: a keyword Ray 2.60 calls
        # deprecated (its RayDeprecationWarning), the only way before.
        warnings.simplefilter("ignore", DeprecationWarning)
        explained = ds.map_batches(
            _Explainer,
            fn_constructor_kwargs={
                "model": model,
                "column": column,
                "reads": "text" if vectors_column is None else "array",
                "threads": max(1, int(num_cpus)),
                "options": explain_options,
                "errors": errors,
            },
            batch_size=batch_size,
            batch_format="pandas",
            compute=compute,
            num_cpus=num_cpus,
            # An actor is not restarted (it would run the same batch into
            # the same failure), and Ray logs an error line for an actor
            # that may restart with its arguments in the object store.
            max_restarts=0,
        )
    return _unwrapping(explained, quiet)


class _ErrorsOnly:
    """A logging filter that lets errors through, nothing less."""

    @staticmethod
    def filter(record) -> bool:
        import logging

        return record.levelno >= logging.ERROR


def start(**init_options) -> None:
    """Starts Ray quietly, unless it runs already: ``ray.init(**init_options)``
    with, unless given, no dashboard (``include_dashboard=False``), no
    forwarding of the workers' output (``log_to_driver=False``) and warnings
    and errors only (``logging_level="WARNING"``); while it starts, only
    errors are logged (not its "Started a local Ray instance", nor its
    notice that a local cluster uses token authentication). Call it before
    making a dataset, which otherwise starts Ray with its notices.
    ``init_options`` are ``ray.init``'s (``num_cpus=``, ``address=`` ...)."""
    import logging

    import ray

    if ray.is_initialized():
        return
    options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    options.update(init_options)
    handlers = list(logging.getLogger("ray").handlers)
    for handler in handlers:
        handler.addFilter(_ErrorsOnly)
    try:
        ray.init(**options)
    finally:
        for handler in handlers:
            handler.removeFilter(_ErrorsOnly)


def _quiet_ray() -> None:
    """Ray started quietly (:func:`start`) and Ray Data's logger set to
    warnings: its progress lines (printed when stderr is not a terminal),
    execution plans and write summaries are INFO. On a terminal Ray Data
    still draws its progress bars."""
    import logging

    start()
    logging.getLogger("ray.data").setLevel(logging.WARNING)


# --- the caller's side: Ray's wrapped errors, unwrapped -----------------------

#: The dataset classes made by `_unwrapping`, by Ray's class.
_UNWRAPPING = {}


def _unwrapping(ds, quiet=False):
    """``ds`` as an instance of a subclass of its class whose public methods
    raise an actor's `_Failure` as its one-line exception (and return
    datasets and iterators that do the same; the datasets Ray derives from
    it are of its class); with ``quiet``, showing no progress, execution
    plan or statistics."""
    import ray.data

    if not isinstance(ds, ray.data.Dataset) or getattr(ds, "_lrp_unwrapping", False):
        return ds
    base = type(ds)
    if base not in _UNWRAPPING:
        namespace = {"_lrp_unwrapping": True, "__doc__": base.__doc__, "__module__": base.__module__}
        for name in dir(base):
            member = inspect.getattr_static(base, name, None)
            if not name.startswith("_") and isinstance(member, types.FunctionType):
                namespace[name] = _unwrapped(member)
        _UNWRAPPING[base] = type(base.__name__, (base,), namespace)
    # Ray Data wraps a map's exception in UserCodeException, whose cause
    # does not survive the trip from the actor: raising the original keeps
    # the `_Failure`. The setting goes on a copy of the context, which the
    # dataset otherwise shares with the one it was made from.
    with warnings.catch_warnings():
        # Copying a context reads its deprecated settings too.
        warnings.simplefilter("ignore", DeprecationWarning)
        unwrapping = ray.data.Dataset.copy(ds, _deep_copy=True, _as=_UNWRAPPING[base])
    unwrapping.context.raise_original_map_exception = True
    if quiet:
        unwrapping.context.print_on_execution_start = False
        unwrapping.context.enable_auto_log_stats = False
    unwrapping._logical_plan.context = unwrapping.context
    return unwrapping


def _unwrapped(method):
    """``method``, raising a `_Failure` inside Ray's error as itself."""

    def call(self, *args, **kwargs):
        try:
            result = method(self, *args, **kwargs)
        except Exception as error:
            _raise_failure(error)
            raise
        if hasattr(result, "__next__"):
            return _unwrapped_iterator(result)
        if _lazy_iterable(result):
            return _UnwrappedIterable(result)
        return _unwrapping(result)

    call.__name__ = method.__name__
    call.__qualname__ = method.__qualname__
    call.__doc__ = method.__doc__
    call.__wrapped__ = method
    return call


def _unwrapped_iterator(iterator):
    """``iterator``'s items, raising a `_Failure` inside Ray's error as itself."""
    try:
        yield from iterator
    except Exception as error:
        _raise_failure(error)
        raise


def _lazy_iterable(value) -> bool:
    """Whether ``value`` is an iterable that may run the dataset as it is
    iterated (``iter_rows()``, ``iter_batches()``), not a container of
    results."""
    import ray.data

    containers = (list, tuple, dict, str, bytes, np.ndarray, ray.data.Dataset)
    return hasattr(value, "__iter__") and not isinstance(value, containers) and not hasattr(value, "columns")


class _UnwrappedIterable:
    """An iterable of Ray's whose iterators raise a `_Failure` inside Ray's
    error as itself; its other attributes are the iterable's."""

    def __init__(self, inner):
        self._inner = inner

    def __iter__(self):
        return _unwrapped_iterator(iter(self._inner))

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _raise_failure(error: BaseException) -> None:
    """Raises the `_Failure` that ``error`` wraps (Ray's ``RayTaskError``
    is an instance of its cause's class, or holds it as ``cause``, or chains
    it), as its one-line exception; returns if there is none."""
    seen, pending = set(), [error]
    while pending:
        e = pending.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, _Failure):
            raise _Failure(e.kind, e.message).exception() from None
        pending += [e.__cause__, e.__context__, getattr(e, "cause", None)]
