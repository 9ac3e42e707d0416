"""Demo job types, registered in ``settings.JOBS_TYPES``.

Handlers are Django ``@task`` functions that take the worker's ``JobContext`` first and the
job's payload as keyword arguments.
"""

import time

from django.tasks import task
from rest_framework import serializers

from documents.models import Document
from jobs.context import JobError


@task(takes_context=True)
def echo(context, **payload):
    """``demo.echo``: returns ``{"echo": payload}``."""
    return {"echo": payload}


@task(takes_context=True)
def fail(context, **payload):
    """``demo.fail``: always fails with the client-visible error ``"demo failure"``."""
    raise JobError("demo failure")


class SleepPayload(serializers.Serializer):
    seconds = serializers.FloatField(min_value=0, max_value=60)


@task(takes_context=True)
def sleep(context, seconds: float):
    """``demo.sleep``: sleeps ``seconds``, reporting progress and honouring cancellation
    every second."""
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        if context.cancelled():
            return None
        context.report_progress(
            100 * elapsed / seconds if seconds else 100, f"{int(elapsed)}s of {seconds:g}s"
        )
        time.sleep(min(1.0, seconds - elapsed))
    return {"slept": seconds}


class AiGenerationPayload(serializers.Serializer):
    prompt = serializers.CharField(max_length=2000, required=False, default="")
    # The provider's tokens the generation may use: its units of the llm_tokens limit.
    max_tokens = serializers.IntegerField(min_value=1, max_value=8000, required=False, default=500)


@task(takes_context=True)
def ai_generation(context, prompt: str = "", max_tokens: int = 500):
    """``ai_generation``: stands in for a generator; stores a Document in the tenant's
    schema and returns ``{"success": true, "document_id": …}``."""
    document = Document.objects.create(
        title=(prompt or "Generated document")[:200], body=f"Generated from: {prompt}"
    )
    return {"success": True, "document_id": str(document.id)}
