"""Signals the worker sends, for metrics and other observers (never for state changes).

- ``job_started(sender=Worker, job=Job)``: a runner thread starts a handler. ``job``
  carries ``created_at``, ``run_at`` and ``started_at`` as claimed.
- ``job_finished(sender=Worker, job=Job, outcome=str, duration=float)``: the handler
  returned or raised; ``outcome`` is one of ``completed``, ``failed``, ``retrying``,
  ``cancelled``, ``discarded``; ``duration`` in seconds.

Receivers run in the runner thread: keep them fast and never raise.
"""

from django.dispatch import Signal

job_started = Signal()
job_finished = Signal()
