"""Signed completion webhooks: a tenant's endpoints are told when its jobs end.

When a worker records that a run ended its job in a final status (``jobs_finished``: the
signal the outcome writer sends once per batch of runs, after the writes), each endpoint of
the job's tenant that lists that status gets one ``WebhookDelivery`` and one delivery job (the
internal type ``webhooks.deliver``), both stored in one transaction. The delivery job
POSTs the job's JSON, exactly the body of ``GET /api/jobs/{id}``, signed as the Standard
Webhooks specification says (``webhook-id``, ``webhook-timestamp``, ``webhook-signature:
v1,<base64 HMAC-SHA256 of id.timestamp.body>`` keyed with the secret's base64 bytes).
A non-2xx answer or a network error fails the attempt: the job engine retries it with its
backoff. Redirects are never followed. ``JOBS_WEBHOOK_TIMEOUT`` bounds the whole delivery
(connecting, TLS, sending and every read: each socket operation may take only what is left),
so an endpoint that answers one byte at a time holds a thread no longer than that. Delivery
jobs run in their own queue (``JOBS_PLATFORM_QUEUE``), which workers serve in a pool of its
own: no tenant's endpoint holds the threads that run tenants' jobs.

A tenant has at most ``JOBS_WEBHOOK_MAX_ENDPOINTS`` endpoints. A URL whose host resolves to
a loopback, private, link-local or otherwise non-public address, or to an IPv6 address
that embeds an IPv4 one (NAT64, 6to4, Teredo, IPv4-compatible: the IPv4 address it reaches
is not checked), or that names port 0, is refused at registration and again at each
delivery (the host is resolved once and the connection goes to that very address, so a DNS
answer changed in between cannot redirect it), unless ``JOBS_WEBHOOK_ALLOW_PRIVATE``.

Endings no worker reports (a pending job cancelled by its client or staff, a job the
reaper fails after its worker died) are found by ``sweep``, which every worker runs at
each reaper round: they are delivered up to ``JOBS_REAP_INTERVAL`` later. The sweep locks one
endpoint at a time ``FOR NO KEY UPDATE``, which the foreign-key checks of the deliveries
that ``jobs_finished`` inserts at the same time do not wait for (``FOR UPDATE`` made the
two deadlock). Deliveries are deleted with their job (``ON DELETE CASCADE``).
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
from jobs.periodic import periodic
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
# IPv6 ranges whose addresses carry an IPv4 address that a gateway or the host reaches:
# NAT64 (well-known and local-use prefixes), 6to4, Teredo and IPv4-compatible.
_EMBEDDING_IPV4 = tuple(
    ipaddress.ip_network(prefix)
    for prefix in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::/96")
)


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
    URL, port 0, a host that does not resolve, or any address that is not public
    (``_public``; unless ``JOBS_WEBHOOK_ALLOW_PRIVATE``)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise WebhookRefused("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise WebhookRefused("the URL must not carry credentials")
    try:
        port = parts.port
    except ValueError:
        raise WebhookRefused("the port must be a number from 1 to 65535") from None
    if port == 0:
        raise WebhookRefused("the port must be a number from 1 to 65535")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError):
        raise WebhookRefused(f"the host {parts.hostname!r} does not resolve") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]
    if not settings.JOBS_WEBHOOK_ALLOW_PRIVATE:
        for address in addresses:
            if not _public(address):
                raise WebhookRefused(
                    f"the host {parts.hostname!r} resolves to a non-public address ({address})"
                )
    return parts.hostname, port, str(addresses[0])


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``address`` is global unicast, judged by the IPv4 address of an IPv4-mapped
    one; an IPv6 address embedding an IPv4 address any other way is never public."""
    if address.version == 6:
        if address.ipv4_mapped:
            address = address.ipv4_mapped
        elif any(address in network for network in _EMBEDDING_IPV4):
            return False
    return address.is_global and not address.is_multicast


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


def endpoint_validate(endpoint: WebhookEndpoint) -> None:
    """``ValidationError`` naming each bad field of ``endpoint`` (``url``, ``secret``,
    ``statuses``), or the tenant's endpoint count (``__all__``) for a new one."""
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
    others = WebhookEndpoint.objects.filter(tenant=endpoint.tenant).exclude(pk=endpoint.pk)
    if endpoint.pk is None and (
        full := services.tenant_bound_refusal(
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
    _one_tenant(endpoint.tenant)
    with transaction.atomic():
        services.tenant_lock(endpoint.tenant)
        endpoint_validate(endpoint)
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
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        now = cursor.fetchone()[0]
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
    enqueued = sum(_enqueue_deliveries(job, job.status, [endpoint]) for job in ended)
    swept = ended[-1].completed_at if len(ended) == SWEEP_BATCH else now
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(swept_until=swept)
    return enqueued


# --- delivering ----------------------------------------------------------------------------


def signature(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class _Deadline:
    """A moment on the monotonic clock; ``left()`` is the time until it, or ``TimeoutError``
    once it has passed."""

    def __init__(self, seconds: float):
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the webhook delivery ran out of time")
        return left


class _DeadlineMixin:
    """For a socket class: each send and receive may take only what is left of
    ``self.deadline`` (its timeout is set to that first), so many slow operations together
    still end by the deadline."""

    deadline: _Deadline

    def send(self, *args, **kwargs):
        self.settimeout(self.deadline.left())
        return super().send(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        self.settimeout(self.deadline.left())
        return super().sendall(*args, **kwargs)

    def recv(self, *args, **kwargs):
        self.settimeout(self.deadline.left())
        return super().recv(*args, **kwargs)

    def recv_into(self, *args, **kwargs):
        self.settimeout(self.deadline.left())
        return super().recv_into(*args, **kwargs)


class _DeadlineSocket(_DeadlineMixin, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineMixin, ssl.SSLSocket):
    pass


def _connect(address: str, port: int, deadline: _Deadline) -> _DeadlineSocket:
    """A TCP connection to ``address`` (an IP address), made within ``deadline``."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = _DeadlineSocket(family, socket.SOCK_STREAM)
    sock.deadline = deadline
    try:
        sock.settimeout(deadline.left())
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to ``address``, whatever ``host`` (the Host header) resolves to now; every
    socket operation within ``deadline``."""

    def __init__(self, host, port, address, deadline: _Deadline):
        super().__init__(host, port)
        self._address = address
        self._deadline = deadline

    def connect(self):
        self.sock = _connect(self._address, self.port, self._deadline)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to ``address``, with SNI and certificate checked for ``host``; the handshake and
    every later socket operation within ``deadline``."""

    def __init__(self, host, port, address, deadline: _Deadline):
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlineSSLSocket
        super().__init__(host, port, context=context)
        self._address = address
        self._deadline = deadline

    def connect(self):
        sock = _connect(self._address, self.port, self._deadline)
        try:
            sock.settimeout(self._deadline.left())  # the handshake, in wrap_socket
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock.deadline = self._deadline


def _post(url: str, headers: dict, body: bytes) -> tuple[int, bytes]:
    """POST ``body`` to ``url`` (resolved and checked by ``resolve``), all of it within
    ``JOBS_WEBHOOK_TIMEOUT`` seconds of the call; the status and the body's first bytes."""
    deadline = _Deadline(settings.JOBS_WEBHOOK_TIMEOUT)
    host, port, address = resolve(url)
    parts = urlsplit(url)
    pinned = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = pinned(host, port, address, deadline)
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
