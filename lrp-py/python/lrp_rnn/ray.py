"""Explain a corpus on a Ray cluster: :func:`explain_dataset`.

Ray is an optional extra (``pip install ./lrp-py[ray]``) and is imported
only here. The work is one ``Dataset.map_batches`` with a callable class:
each actor loads the model once, then explains the batches Ray hands it
with :meth:`lrp_rnn.Model.explain` (packed batches on the actor's cores).
Ray schedules everything; there is no scheduler of lrp's own.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["explain_dataset"]

#: The columns :func:`explain_dataset` adds to each row.
OUTPUT_COLUMNS = ("predicted", "scores", "token_relevance", "tokens")


class _Explainer:
    """One actor's model, loaded once; explains one batch per call."""

    def __init__(self, model: str, column: str, threads: int, options: dict):
        # The actor's share of cores: rayon reads this when the pool starts.
        os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
        from . import Model

        self.model = Model.default() if model == "default" else Model.load(model)
        self.column = column
        self.options = options

    def __call__(self, batch):
        inputs = [item if isinstance(item, str) else np.asarray(item) for item in batch[self.column]]
        explanations = self.model.explain(inputs, **self.options)
        batch = batch.copy()
        batch["predicted"] = [e.predicted for e in explanations]
        batch["scores"] = [e.scores for e in explanations]
        batch["token_relevance"] = [e.token_relevance for e in explanations]
        batch["tokens"] = [e.tokens for e in explanations]
        return batch


def explain_dataset(
    ds,
    model,
    *,
    text_column: str = "text",
    vectors_column=None,
    batch_size: int = 256,
    concurrency=None,
    num_cpus: float = 1,
    **explain_options,
):
    """Explains every row of a Ray Dataset; returns a new, lazy ``ray.data.Dataset``.

    Args:
        ds: the dataset; each row holds a text in ``text_column``, or an array
            ``[T, E]`` in ``vectors_column`` when that is given.
        model: a model directory path (readable on every node), or ``"default"``
            for the built-in SST model.
        batch_size: rows per call of an actor.
        concurrency: actors: an int for a fixed pool, ``(min, max)`` for an
            autoscaling one, ``None`` for Ray's default (from one up). A fixed
            pool that takes every CPU leaves none for a reading source's
            tasks (``read_text``, ``read_parquet``): the run then waits
            forever, so leave a CPU free or keep ``None``.
        num_cpus: CPUs reserved per actor; the actor computes on as many
            threads.
        explain_options: the keywords of :meth:`lrp_rnn.Model.explain`
            (``method``, ``target``, ``eps``, ...).

    The result has the input columns plus ``predicted``, ``scores``,
    ``token_relevance`` and ``tokens`` (``None`` for vectors), each row's
    values those ``lrp explain`` prints for it. A failing row fails the
    dataset's execution with the model's ``ValueError``.
    """
    import ray.data

    if isinstance(concurrency, tuple):
        compute = ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    elif concurrency is not None:
        compute = ray.data.ActorPoolStrategy(size=int(concurrency))
    else:
        compute = ray.data.ActorPoolStrategy(min_size=1, max_size=None)
    model = "default" if model == "default" else os.path.abspath(os.fspath(model))
    column = vectors_column if vectors_column is not None else text_column
    return ds.map_batches(
        _Explainer,
        fn_constructor_kwargs={
            "model": model,
            "column": column,
            "threads": max(1, int(num_cpus)),
            "options": explain_options,
        },
        batch_size=batch_size,
        batch_format="pandas",
        compute=compute,
        num_cpus=num_cpus,
    )
