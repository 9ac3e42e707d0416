"""Health probes, on every host (the middleware answers them first; these name them), and
the problems page that every problem ``type`` points to."""

from django.urls import path

from core.health import healthz, readyz
from core.problem_docs import problem_types
from core.problems import PROBLEM_TYPES_PATH

urlpatterns = [
    path(PROBLEM_TYPES_PATH.lstrip("/"), problem_types, name="problem-types"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]
