"""Procrastinate side of the worker benchmark. Runs in its own virtualenv (bench/run.py
creates it under .data/bench/); never imported by the project.

    python procrastinate_bench.py CONNINFO setup | defer N TASK | worker CONCURRENCY
                                  | latency K SPACING TASK

TASK is ``noop`` (a plain function, run in a thread) or ``noop_async`` (``async def``, as
Procrastinate's documentation writes tasks, run on the worker's event loop).
"""

import sys
import time

from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=sys.argv[1]))


@app.task(name="noop")
def noop():
    return None


@app.task(name="noop_async")
async def noop_async():
    return None


TASKS = {"noop": noop, "noop_async": noop_async}


def main() -> None:
    command, args = sys.argv[2], sys.argv[3:]
    with app.open():
        if command == "setup":
            app.schema_manager.apply_schema()
        elif command == "defer":
            count, task = int(args[0]), TASKS[args[1]]
            for start in range(0, count, 1000):
                task.batch_defer(*({} for _ in range(min(1000, count - start))))
        elif command == "worker":
            # wait=False: exit once the queue is empty (the drain is timed from the events).
            app.run_worker(wait=False, concurrency=int(args[0]), install_signal_handlers=False)
        elif command == "latency":
            count, spacing, task = int(args[0]), float(args[1]), TASKS[args[2]]
            for _ in range(count):
                task.defer()
                time.sleep(spacing)
        else:
            raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
