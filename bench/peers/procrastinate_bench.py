"""Procrastinate side of the worker benchmark. Runs in its own virtualenv (bench/run.py
creates it under .data/bench/); never imported by the project.

    python procrastinate_bench.py CONNINFO setup|defer N|worker CONCURRENCY|latency K SPACING
"""

import sys
import time

from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=sys.argv[1]))


@app.task(name="noop")
def noop():
    return None


def main() -> None:
    command, args = sys.argv[2], sys.argv[3:]
    with app.open():
        if command == "setup":
            app.schema_manager.apply_schema()
        elif command == "defer":
            count = int(args[0])
            for start in range(0, count, 1000):
                noop.batch_defer(*({} for _ in range(min(1000, count - start))))
        elif command == "worker":
            # wait=False: exit once the queue is empty (the drain is timed from the events).
            app.run_worker(wait=False, concurrency=int(args[0]), install_signal_handlers=False)
        elif command == "latency":
            count, spacing = int(args[0]), float(args[1])
            for _ in range(count):
                noop.defer()
                time.sleep(spacing)
        else:
            raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
