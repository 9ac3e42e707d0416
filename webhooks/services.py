"""Completion webhooks: a tenant's endpoints are told when its jobs end.

When a worker records that a run ended its job in a final status (``jobs_finished``: the
signal the outcome writer sends once per batch of runs, after the writes), each endpoint of
the job's tenant that lists that status gets one ``WebhookDelivery`` and one delivery job (the
internal type ``webhooks.deliver``, ``webhooks.tasks.deliver``), both stored in one
transaction. The delivery job POSTs the job's JSON, exactly the body of ``GET
/api/jobs/{id}``, signed (``webhooks.signing``) through the SSRF-safe client
(``webhooks.client``). A non-2xx answer or a network error fails the attempt: the job
engine retries it with its backoff. Delivery jobs run in their own queue
(``JOBS_PLATFORM_QUEUE``), which workers serve in a pool of its own: no tenant's endpoint
holds the threads that run tenants' jobs.

A tenant has at most ``JOBS_WEBHOOK_MAX_ENDPOINTS`` endpoints. A URL the client would
refuse (``webhooks.client.resolve``) is refused at registration, and again at each
delivery.

Endings no worker reports (a pending job cancelled by its client or staff, a job the
reaper fails after its worker died) are found by ``sweep``, which every worker runs at
each reaper round: they are delivered up to ``JOBS_REAP_INTERVAL`` later. The sweep locks one
endpoint at a time ``FOR NO KEY UPDATE``, which the foreign-key checks of the deliveries
that ``jobs_finished`` inserts at the same time do not wait for (``FOR UPDATE`` made the
two deadlock). Deliveries are deleted with their job (``ON DELETE CASCADE``).
"""

import http.client
import json
import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.dispatch import receiver

from core.clock import db_now
from jobs import services
from jobs.models import FINAL_STATUSES, Job
from jobs.periodic import periodic
from jobs.signals import JobOutcome, jobs_finished
from tenants.scope import one_tenant, tenant_bound_refusal, tenant_lock
from webhooks import client
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.signing import secret_key, signed_headers

logger = logging.getLogger(__name__)

DELIVERY_TYPE = "webhooks.deliver"
# The outcomes after which a job may be final (a lost run may also have been requeued).
_ENDINGS = frozenset(
    {
        JobOutcome.COMPLETED,
        JobOutcome.FAILED,
        JobOutcome.CANCELLED,
        JobOutcome.TIMED_OUT,
        JobOutcome.LOST,
    }
)
# How far behind its last sweep each sweep of an endpoint looks again: a final status
# is stamped with its transaction's start, and may commit that much later.
SWEEP_OVERLAP = timedelta(seconds=60)
# Most jobs one sweep of an endpoint takes (the next sweep takes the rest).
SWEEP_BATCH = 500


# --- endpoints ---------------------------------------------------------------------------


def endpoint_validate(endpoint: WebhookEndpoint) -> None:
    """``ValidationError`` naming each bad field of ``endpoint`` (``url``, ``secret``,
    ``statuses``), or the tenant's endpoint count (``__all__``) for a new one."""
    one_tenant(endpoint.tenant)
    errors = {}
    try:
        endpoint.clean_fields(exclude=["tenant", "statuses"])
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if "url" not in errors:
        try:
            client.resolve(endpoint.url)
        except client.WebhookRefused as exc:
            errors["url"] = [f"Refused: {exc}."]
    if "secret" not in errors:
        try:
            secret_key(endpoint.secret)
        except ValueError as exc:
            errors["secret"] = [f"Invalid: {exc}."]
    statuses = endpoint.statuses
    if not isinstance(statuses, list) or not statuses or not set(statuses) <= set(FINAL_STATUSES):
        known = ", ".join(sorted(FINAL_STATUSES))
        errors["statuses"] = [f"A non-empty list of final statuses: {known}."]
    others = WebhookEndpoint.objects.filter(tenant=endpoint.tenant).exclude(pk=endpoint.pk)
    if endpoint.pk is None and (
        full := tenant_bound_refusal(
            others, setting="JOBS_WEBHOOK_MAX_ENDPOINTS", noun="webhook endpoints"
        )
    ):
        errors["__all__"] = [full]
    if errors:
        raise ValidationError(errors)


def endpoint_save(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Validate (``endpoint_validate``) and store ``endpoint``; ``ValidationError`` and
    nothing stored otherwise. The tenant's row is locked meanwhile, so concurrent saves
    cannot pass the count bound together."""
    one_tenant(endpoint.tenant)
    with transaction.atomic():
        tenant_lock(endpoint.tenant)
        endpoint_validate(endpoint)
        endpoint.save()
    return endpoint


def endpoint_remove(*, tenant, endpoint_id: int) -> bool:
    """Delete an endpoint of ``tenant`` and its deliveries; False if there is none."""
    deleted, _ = WebhookEndpoint.objects.filter(tenant=one_tenant(tenant), pk=endpoint_id).delete()
    return bool(deleted)


def endpoint_send_test(*, tenant, endpoint_id: int) -> str:
    """POST a signed test message to an endpoint of ``tenant`` now (``webhooks.client``,
    within ``JOBS_WEBHOOK_TIMEOUT``) and say what came of it: the answer's status, or why
    nothing was sent. The body says it is a test (``{"type": "webhook.test", …}``), so a
    receiver can tell it from a job's; nothing is stored. ``WebhookEndpoint.DoesNotExist``
    for another tenant's endpoint."""
    endpoint = WebhookEndpoint.objects.get(tenant=one_tenant(tenant), pk=endpoint_id)
    message_id = f"msg_test_{uuid.uuid4().hex}"
    body = json.dumps(
        {"type": "webhook.test", "endpoint": endpoint.pk, "sent_at": db_now().isoformat()},
        separators=(",", ":"),
    ).encode()
    headers = signed_headers(secret=endpoint.secret, message_id=message_id, body=body)
    try:
        status, _ = client.post(endpoint.url, headers, body)
    except client.WebhookRefused as exc:
        return f"not sent: {exc}"
    except (OSError, http.client.HTTPException) as exc:
        return f"unreachable: {type(exc).__name__}"
    return f"answered {status}"


def delivery_redeliver(*, tenant, delivery_id) -> Job:
    """Deliver a delivery of ``tenant`` again: a new delivery job for it (retried with the
    engine's backoff like the first), its attempts added to the delivery's list.
    ``WebhookDelivery.DoesNotExist`` for another tenant's delivery."""
    delivery = WebhookDelivery.objects.select_related("tenant").get(
        tenant=one_tenant(tenant), pk=delivery_id
    )
    return services.job_enqueue(
        tenant=delivery.tenant,
        type=DELIVERY_TYPE,
        payload={"delivery": str(delivery.pk)},
        queue=settings.JOBS_PLATFORM_QUEUE,
        system_key=f"webhook:{delivery.pk}:again:{uuid.uuid4().hex}",
    )


# --- enqueueing deliveries -----------------------------------------------------------------


@receiver(jobs_finished, dispatch_uid="webhooks.services.deliveries")
def _on_jobs_finished(sender, runs, **kwargs) -> None:
    """After a batch of runs' outcomes is recorded: deliveries for each job that is now
    final, but never for the platform's internal jobs (deliveries included). One query for
    a batch whose tenants have no endpoints; then, per job of a tenant with endpoints, its
    status and its deliveries."""
    jobs = [job for job, outcome, _ in runs if outcome in _ENDINGS and not job.internal]
    if not jobs:
        return
    endpoints: dict[int, list[WebhookEndpoint]] = {}
    for endpoint in WebhookEndpoint.objects.filter(tenant_id__in={job.tenant_id for job in jobs}):
        endpoints.setdefault(endpoint.tenant_id, []).append(endpoint)
    for job in jobs:
        if job.tenant_id not in endpoints:
            continue
        try:
            status = (
                Job.objects.filter(pk=job.pk, tenant_id=job.tenant_id)
                .values_list("status", flat=True)
                .first()
            )
            if status in FINAL_STATUSES:
                _enqueue_deliveries(job, status, endpoints[job.tenant_id])
        except Exception:  # one job's failure loses no other's deliveries (sweep retries)
            logger.exception("webhooks: deliveries not enqueued", extra={"job_id": str(job.id)})


def _enqueue_deliveries(job: Job, status: str, endpoints) -> int:
    """One delivery (and its delivery job) per endpoint of the job's own tenant that lists
    ``status``; an endpoint already told of this job is skipped. Returns how many."""
    enqueued = 0
    for endpoint in endpoints:
        if status not in endpoint.statuses or endpoint.tenant_id != job.tenant_id:
            continue
        try:
            with transaction.atomic():
                delivery = WebhookDelivery.objects.create(
                    tenant_id=job.tenant_id, endpoint=endpoint, job_id=job.pk, job_status=status
                )
                services.job_enqueue(
                    tenant=job.tenant,
                    type=DELIVERY_TYPE,
                    payload={"delivery": str(delivery.pk)},
                    queue=settings.JOBS_PLATFORM_QUEUE,
                    system_key=f"webhook:{delivery.pk}",
                )
        except IntegrityError:
            continue  # this endpoint already has this job's delivery
        enqueued += 1
    return enqueued


@periodic("webhooks.sweep")
def sweep() -> int:
    """Deliveries for the final jobs no worker reported: for each endpoint, its tenant's
    jobs that ended (in a status it lists) since its last sweep, less ``SWEEP_OVERLAP``,
    and have no delivery to it yet. Returns how many were enqueued. Safe from every
    worker at once: an endpoint another worker is sweeping is skipped. Each endpoint is
    swept in a transaction of its own, its row locked ``FOR NO KEY UPDATE`` (and nothing
    else): ``_on_jobs_finished`` inserting a delivery to it meanwhile needs only ``FOR KEY
    SHARE`` on it, so neither waits for the other in both directions."""
    enqueued = 0
    after = 0
    while True:
        with transaction.atomic():
            endpoint = (
                WebhookEndpoint.objects.select_for_update(
                    no_key=True, skip_locked=True, of=("self",)
                )
                .filter(tenant__is_active=True, pk__gt=after)
                .order_by("pk")
                .first()
            )
            if endpoint is None:
                return enqueued
            after = endpoint.pk
            enqueued += _sweep_endpoint(endpoint)


def _sweep_endpoint(endpoint: WebhookEndpoint) -> int:
    """Part of ``sweep``, in its transaction: one endpoint's deliveries; how many."""
    now = db_now()
    delivered = WebhookDelivery.objects.filter(endpoint=endpoint, job_id=OuterRef("pk"))
    ended = list(
        Job.objects.select_related("tenant")
        .filter(
            tenant_id=endpoint.tenant_id,
            status__in=endpoint.statuses,
            completed_at__gt=endpoint.swept_until - SWEEP_OVERLAP,
            completed_at__gte=endpoint.created_at,
        )
        .exclude(internal=True)
        .exclude(Exists(delivered))
        .order_by("completed_at")[:SWEEP_BATCH]
    )
    enqueued = sum(_enqueue_deliveries(job, job.status, [endpoint]) for job in ended)
    swept = ended[-1].completed_at if len(ended) == SWEEP_BATCH else now
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(swept_until=swept)
    return enqueued
