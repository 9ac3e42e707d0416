"""Signed completion webhooks: a tenant's endpoints are told when its jobs end.

When a worker records that a run ended its job in a final status (``jobs_finished``: the
signal the outcome writer sends once per batch of runs, after the writes), each endpoint of
the job's tenant that lists that status gets one ``WebhookDelivery`` and one delivery job (the
internal type ``webhooks.deliver``), both stored in one transaction. The delivery job
POSTs the job's JSON, exactly the body of ``GET /api/jobs/{id}``, signed as the Standard
Webhooks specification says (``webhook-id``, ``webhook-timestamp``, ``webhook-signature:
v1,<base64 HMAC-SHA256 of id.timestamp.body>`` keyed with the secret's base64 bytes).
A non-2xx answer or a network error fails the attempt: the job engine retries it with its
backoff. Redirects are never followed; connecting and each read time out after
``JOBS_WEBHOOK_TIMEOUT`` seconds.

A URL whose host resolves to a loopback, private, link-local or otherwise non-public
address is refused at registration and again at each delivery (the host is resolved once
and the connection goes to that very address, so a DNS answer changed in between cannot
redirect it), unless ``JOBS_WEBHOOK_ALLOW_PRIVATE``.

Endings no worker reports (a pending job cancelled by its client or staff, a job the
reaper fails after its worker died) are found by ``sweep``, which every worker runs at
each reaper round: they are delivered up to ``JOBS_REAP_INTERVAL`` later.
"""

import base64
import binascii
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import time
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.dispatch import receiver
from django.tasks import task
from django.utils import timezone

from accounts.roles import ALL_TENANTS
from jobs import services
from jobs.context import JobError
from jobs.models import FINAL_STATUSES, Job, WebhookDelivery, WebhookEndpoint
from jobs.signals import JobOutcome, jobs_finished
from tenants.models import Tenant

logger = logging.getLogger("jobs.webhooks")

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
# The most bytes of a response body kept per attempt.
BODY_EXCERPT = 500
# How far behind its last sweep each sweep of an endpoint looks again: a final status
# is stamped with its transaction's start, and may commit that much later.
SWEEP_OVERLAP = timedelta(seconds=60)
# Most jobs one sweep of an endpoint takes (the next sweep takes the rest).
SWEEP_BATCH = 500


class WebhookRefused(Exception):
    """The endpoint's URL may not be called (scheme, host, or a non-public address)."""


# --- endpoints ---------------------------------------------------------------------------


def _one_tenant(tenant) -> Tenant:
    if not isinstance(tenant, Tenant):
        raise TypeError(f"tenant must be a Tenant, not {tenant!r}")
    return tenant


def resolve(url: str) -> tuple[str, int, str]:
    """``(host, port, address)`` to connect to for ``url``: the host resolved once, its
    first address. ``WebhookRefused`` for a scheme other than http(s), credentials in the
    URL, a host that does not resolve, or any address that is not public (unless
    ``JOBS_WEBHOOK_ALLOW_PRIVATE``)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise WebhookRefused("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise WebhookRefused("the URL must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError):
        raise WebhookRefused(f"the host {parts.hostname!r} does not resolve") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]
    if not settings.JOBS_WEBHOOK_ALLOW_PRIVATE:
        for address in addresses:
            mapped = getattr(address, "ipv4_mapped", None) or address
            if not mapped.is_global or mapped.is_multicast:
                raise WebhookRefused(
                    f"the host {parts.hostname!r} resolves to a non-public address ({address})"
                )
    return parts.hostname, port, str(addresses[0])


def _secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ``ValueError`` if it is not one."""
    if not secret.startswith("whsec_"):
        raise ValueError("the secret must start with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError("the secret after whsec_ must be base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("the secret must hold 24 to 64 bytes")
    return key


def endpoint_save(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Validate and store ``endpoint``; ``ValidationError`` naming each bad field
    (``url``, ``secret``, ``statuses``), nothing stored."""
    _one_tenant(endpoint.tenant)
    errors = {}
    try:
        endpoint.clean_fields(exclude=["tenant", "statuses"])
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if "url" not in errors:
        try:
            resolve(endpoint.url)
        except WebhookRefused as exc:
            errors["url"] = [f"Refused: {exc}."]
    if "secret" not in errors:
        try:
            _secret_key(endpoint.secret)
        except ValueError as exc:
            errors["secret"] = [f"Invalid: {exc}."]
    statuses = endpoint.statuses
    if not isinstance(statuses, list) or not statuses or not set(statuses) <= set(FINAL_STATUSES):
        known = ", ".join(sorted(FINAL_STATUSES))
        errors["statuses"] = [f"A non-empty list of final statuses: {known}."]
    if errors:
        raise ValidationError(errors)
    endpoint.save()
    return endpoint


def endpoints_for(*, tenant):
    """The endpoints of ``tenant`` (or every tenant's, for ``ALL_TENANTS``)."""
    endpoints = WebhookEndpoint.objects.select_related("tenant")
    return endpoints if tenant is ALL_TENANTS else endpoints.filter(tenant=_one_tenant(tenant))


def endpoint_remove(*, tenant, endpoint_id: int) -> bool:
    """Delete an endpoint of ``tenant`` and its deliveries; False if there is none."""
    deleted, _ = WebhookEndpoint.objects.filter(tenant=_one_tenant(tenant), pk=endpoint_id).delete()
    return bool(deleted)


# --- enqueueing deliveries -----------------------------------------------------------------


@receiver(jobs_finished, dispatch_uid="jobs.webhooks.deliveries")
def _on_jobs_finished(sender, runs, **kwargs) -> None:
    """After a batch of runs' outcomes is recorded: deliveries for each job that is now
    final. One query for a batch whose tenants have no endpoints; then, per job of a
    tenant with endpoints, its status and its deliveries."""
    jobs = [job for job, outcome, _ in runs if outcome in _ENDINGS and job.type != DELIVERY_TYPE]
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
                    system_key=f"webhook:{delivery.pk}",
                )
        except IntegrityError:
            continue  # this endpoint already has this job's delivery
        enqueued += 1
    return enqueued


def sweep() -> int:
    """Deliveries for the final jobs no worker reported: for each endpoint, its tenant's
    jobs that ended (in a status it lists) since its last sweep, less ``SWEEP_OVERLAP``,
    and have no delivery to it yet. Returns how many were enqueued. Safe from every
    worker at once: an endpoint another worker is sweeping is skipped."""
    enqueued = 0
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT now()")
            now = cursor.fetchone()[0]
        endpoints = WebhookEndpoint.objects.select_for_update(skip_locked=True).filter(
            tenant__is_active=True
        )
        for endpoint in endpoints:
            delivered = WebhookDelivery.objects.filter(endpoint=endpoint, job_id=OuterRef("pk"))
            ended = list(
                Job.objects.select_related("tenant")
                .filter(
                    tenant_id=endpoint.tenant_id,
                    status__in=endpoint.statuses,
                    completed_at__gt=endpoint.swept_until - SWEEP_OVERLAP,
                    completed_at__gte=endpoint.created_at,
                )
                .exclude(type=DELIVERY_TYPE)
                .exclude(Exists(delivered))
                .order_by("completed_at")[:SWEEP_BATCH]
            )
            for job in ended:
                enqueued += _enqueue_deliveries(job, job.status, [endpoint])
            swept = ended[-1].completed_at if len(ended) == SWEEP_BATCH else now
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(swept_until=swept)
    return enqueued


# --- delivering ----------------------------------------------------------------------------


def signature(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to ``address``, whatever ``host`` (the Host header) resolves to now."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to ``address``, with SNI and certificate checked for ``host``."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _post(url: str, headers: dict, body: bytes) -> tuple[int, bytes]:
    host, port, address = resolve(url)
    parts = urlsplit(url)
    pinned = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = pinned(host, port, address, settings.JOBS_WEBHOOK_TIMEOUT)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(BODY_EXCERPT)
    finally:
        connection.close()


@task(takes_context=True)
def deliver(context, delivery: str):
    """``webhooks.deliver``: POST one delivery's signed job JSON to its endpoint. A non-2xx
    answer or a network error raises ``JobError`` (the engine retries); a refused URL
    ends the delivery at once."""
    # Imported here: jobs.api.serializers builds the registry at import, which imports
    # this module.
    from jobs.api.serializers import JobOutputSerializer

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
    body = json.dumps(JobOutputSerializer(job).data, separators=(",", ":")).encode()
    message_id = f"msg_{found.pk.hex}"
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "tenant-jobs-webhooks",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(
            secret=found.endpoint.secret, message_id=message_id, timestamp=timestamp, body=body
        ),
    }
    try:
        status, excerpt = _post(found.endpoint.url, headers, body)
    except WebhookRefused as exc:
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
