"""The delivery job of a completion webhook (the internal job type ``webhooks.deliver``,
registered in ``JOBS_TYPES``): one signed POST of the job's JSON per attempt, each attempt
recorded on its delivery."""

import http.client
import json

from django.tasks import task
from django.utils import timezone

from jobs.context import JobError
from jobs.models import Job, job_representation
from webhooks import client
from webhooks.models import WebhookDelivery
from webhooks.signing import signed_headers


@task(takes_context=True)
def deliver(context, delivery: str):
    """``webhooks.deliver``: POST one delivery's signed job JSON to its endpoint. A non-2xx
    answer or a network error raises ``JobError`` (the engine retries); a refused URL
    ends the delivery at once."""
    tenant_id = context.job.tenant_id
    found = (
        WebhookDelivery.objects.select_related("endpoint")
        .filter(pk=delivery, tenant_id=tenant_id)
        .first()
    )
    if found is None:
        return {"delivered": False, "reason": "no such delivery"}
    job = Job.objects.filter(pk=found.job_id, tenant_id=tenant_id).first()
    if job is None:
        _record(found, context, error="the job no longer exists")
        return {"delivered": False, "reason": "the job no longer exists"}
    body = json.dumps(job_representation(job), separators=(",", ":")).encode()
    message_id = f"msg_{found.pk.hex}"
    headers = signed_headers(secret=found.endpoint.secret, message_id=message_id, body=body)
    try:
        status, excerpt = client.post(found.endpoint.url, headers, body)
    except client.WebhookRefused as exc:
        _record(found, context, error=f"refused: {exc}")
        return {"delivered": False, "reason": "refused"}
    except (OSError, http.client.HTTPException) as exc:
        _record(found, context, error=f"unreachable: {type(exc).__name__}")
        raise JobError("the endpoint could not be reached") from None
    _record(found, context, status=status, body=excerpt.decode("utf-8", "replace"))
    if not 200 <= status < 300:
        raise JobError(f"the endpoint answered {status}")
    return {"delivered": True, "status": status}


def _record(found: WebhookDelivery, context, *, status=None, body="", error="") -> None:
    """Append one attempt to the delivery (and its time of success, for a 2xx)."""
    now = timezone.now()
    found.attempts = [
        *found.attempts,
        {
            "attempt": context.job.attempts,
            "at": now.isoformat(),
            "status": status,
            "body": body,
            "error": error,
        },
    ]
    fields = ["attempts"]
    if status is not None and 200 <= status < 300:
        found.delivered_at = now
        fields.append("delivered_at")
    found.save(update_fields=fields)
