"""Throughput of lrp_rnn.ray.explain_dataset, in sentences per second, on a
local Ray: the SST test sentences (2,210) explained with the built-in model,
for each number of actors given (default 1 and 2).

    python lrp-py/bench/ray_throughput.py [--actors 1 2] [--repeat 3] [--cpus N] [--copies K]

Each actor reserves one CPU and computes on one thread. A run is the whole
Dataset execution: starting the actors (each loads the model), explaining
the rows, collecting them in the driver. One warm-up run first; the best of
--repeat runs is printed. --copies K explains the sentences K times over
(a longer run, in which starting the actors weighs less).
"""

import argparse
import re
import time
from pathlib import Path

import ray

from lrp_rnn.ray import explain_dataset

REPO = Path(__file__).resolve().parents[2]


def sentences():
    leaf = re.compile(r"\(\d+ ([^()]+)\)")
    lines = (REPO / "tests" / "fixtures" / "sst" / "test.txt").read_text(encoding="utf8").splitlines()
    return [" ".join(leaf.findall(line)) for line in lines if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--copies", type=int, default=1)
    args = parser.parse_args()
    texts = sentences() * args.copies
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    ds = ray.data.from_items([{"text": t} for t in texts]).materialize()
    for actors in args.actors:
        def run():
            start = time.perf_counter()
            rows = explain_dataset(ds, "default", batch_size=args.batch_size, concurrency=actors).take_all()
            assert len(rows) == len(texts)
            return time.perf_counter() - start

        run()
        best = min(run() for _ in range(args.repeat))
        print(f"{actors} actor(s): {len(texts)} sentences in {best:.2f} s = {len(texts) / best:.0f} sentences/s")
    ray.shutdown()


if __name__ == "__main__":
    main()
