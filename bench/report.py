"""A benchmark run's report, written part by part (bench/run.py).

Each section is printed and appended to the results file as soon as its part ends, so a
part that fails, or a run cut short, keeps every part written before it. A part that raises
is written as failed, with its error, and the run goes on with the next part.
"""

import time
import traceback
from collections.abc import Callable
from pathlib import Path

ERROR_CHARS = 2000  # of a failed part's error, in the report (the traceback is printed)


class Report:
    """Writes to ``path`` (None: prints only). ``durations``: seconds per part, in order;
    ``failed``: the parts that raised."""

    def __init__(self, path: Path | None):
        self.path = path
        self.durations: dict[str, float] = {}
        self.failed: list[str] = []

    def write(self, text: str) -> None:
        """Print ``text`` and append it, as one paragraph or more, to the file now."""
        print(text, flush=True)
        if self.path is not None:
            with self.path.open("a") as results:
                results.write(text.rstrip("\n") + "\n\n")

    def part(self, name: str, measure: Callable[[], str | None]) -> None:
        """Run ``measure`` and write the section it returns (None: a part measured only for
        a later one); if it raises, write that instead and go on."""
        started = time.monotonic()
        try:
            section = measure()
        except Exception as exc:
            traceback.print_exc()
            self.failed.append(name)
            error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
            section = (
                f"### {name}: failed\n\nThis part raised after "
                f"{time.monotonic() - started:.0f} s; the other parts are unaffected (the "
                f"traceback is in the run's output).\n\n```text\n{error}\n```"
            )
        self.durations[name] = time.monotonic() - started
        if section:
            self.write(section)
