"""The jobs API: submit, poll, list and cancel a tenant's jobs. Views stay thin: they parse,
call one selector or service, and render."""

import re
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.http import HttpResponse
from django.utils.cache import patch_vary_headers
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import TenantJWTAuthentication
from core.problems import Problem, ProblemCode
from jobs import selectors, services
from jobs.api import etags, polling, schema
from jobs.api.ratelimit import RateLimitedView, charge_rate_limit_units, check_rate_limit
from jobs.api.read_tokens import (
    READ_TOKEN_HEADER,
    JobReadTokenAuthentication,
    read_token_for,
    wants_read_token,
)
from jobs.api.realtime import fanout, longpoll
from jobs.api.serializers import (
    LIST_MAX_PAGE_SIZE,
    LIST_PAGE_SIZE,
    JobBatchCreateSerializer,
    JobBatchOutputSerializer,
    JobCreateSerializer,
    JobListItemSerializer,
    JobListQuerySerializer,
    JobLogSerializer,
    JobOutputSerializer,
    MeSerializer,
    batch_size,
)
from jobs.models import Job

_IDEMPOTENCY_KEY = re.compile(schema.IDEMPOTENCY_KEY_PATTERN)


class JobCursorPagination(CursorPagination):
    """Newest first. A ``?cursor=`` this API did not hand out (not base64, a bad offset, a
    position that is not a UTC timestamp) is 400 ``invalid_cursor``; DRF alone answers 404
    for some and lets others fail in the query."""

    ordering = ("-created_at", "-id")
    page_size = LIST_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = LIST_MAX_PAGE_SIZE

    def get_paginated_response_schema(self, schema):
        """DRF's, with ``next`` and ``previous`` null as OpenAPI 3.1 says it (``nullable`` is
        3.0's, and would be ignored)."""
        described = super().get_paginated_response_schema(schema)
        for link in ("next", "previous"):
            described["properties"][link].pop("nullable")
            described["properties"][link]["type"] = ["string", "null"]
        return described

    def decode_cursor(self, request):
        if request.query_params.get(self.cursor_query_param) == "":
            raise _invalid_cursor()  # DRF would read a blank cursor as the first page
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise _invalid_cursor() from None
        if cursor is not None and cursor.position is not None:
            if not _is_utc_timestamp(cursor.position):
                raise _invalid_cursor()
        return cursor


def _is_utc_timestamp(position: str) -> bool:
    """True for the positions DRF writes: ``str()`` of a ``created_at``, which Django reads
    in UTC. Other offsets are refused: PostgreSQL cannot read some that Python writes
    (``+08:23:16.003335``)."""
    try:
        return datetime.fromisoformat(position).utcoffset() == timedelta(0)
    except ValueError:
        return False


def _invalid_cursor() -> Problem:
    return Problem(
        status_code=400,
        code=ProblemCode.INVALID_CURSOR,
        detail="The cursor is not one this API returned; follow the next and previous links.",
    )


def _job_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise Problem(
            status_code=400, code=ProblemCode.INVALID_JOB_ID, detail="The job id must be a UUID."
        ) from None


def _idempotency_key(request) -> str:
    """The request's ``Idempotency-Key``, "" when it sends none. A key that is sent must
    match the documented pattern: an empty one is 400, not "no key"."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return ""
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise Problem(
            status_code=400,
            code=ProblemCode.INVALID_IDEMPOTENCY_KEY,
            detail="Idempotency-Key must be 1-255 printable ASCII characters.",
        )
    return key


def _not_modified(headers: dict[str, str]) -> Response:
    """A poll's 304: the job's validator and headers, no body."""
    response = Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
    patch_vary_headers(response, ("Authorization",))
    return response


@schema.job_viewset_schema  # documentation only (jobs/api/schema.py)
class JobViewSet(RateLimitedView, viewsets.GenericViewSet):
    """``/api/jobs`` and ``/api/jobs/{id}`` for the authenticated user's tenant."""

    # A job read token authorizes its job's poll only (jobs.api.read_tokens).
    authentication_classes = [TenantJWTAuthentication, JobReadTokenAuthentication]
    queryset = Job.objects.none()
    serializer_class = JobOutputSerializer
    pagination_class = JobCursorPagination
    lookup_value_regex = "[^/]+"
    # Its GETs enter no atomic() before their first statement: their row-security
    # transaction is opened on demand (tenants.row_security), and a plain poll's read
    # carries it whole, in one round trip.
    row_security_on_demand = True

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication and permissions first
        if self.action == "batch":
            return  # the batch charges one unit of rate limit per job, in the view
        # A plain poll is only checked here; RateLimitedView charges it unless it is a
        # 304. A long poll is charged here, once, however long it waits and what it answers.
        self.charge_later = self.action == "retrieve" and "wait" not in request.query_params
        check_rate_limit(request, charge=not self.charge_later)

    def get_queryset(self):
        query = JobListQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        return selectors.job_list(
            tenant=self.request.tenant,
            statuses=filters.get("status"),
            type=filters.get("type"),
            created_by=self.request.user if filters.get("created_by") == "me" else None,
        )

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(JobListItemSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        """A poll: 304 when ``If-None-Match`` holds the current ETag (decided before
        serializing), ``?wait=N`` to long-poll (``_long_poll``)."""
        job_id = _job_id(pk)
        if_none_match = request.headers.get("If-None-Match")
        if "wait" in request.query_params:
            return self._long_poll(request, job_id, if_none_match)
        if if_none_match:
            # This process's copy of the tenant's job (jobs.api.etags): a 304 without
            # PostgreSQL, whose transaction (tenants.row_security) is then never opened.
            copy = etags.current(request.tenant.pk, job_id)
            if copy is not None and polling.etag_matches(if_none_match, copy.etag):
                return _not_modified(copy.headers)
        read_mark = etags.mark()
        job = selectors.job_poll_get(tenant=request.tenant, job_id=job_id, alone=True)
        headers = polling.poll_headers(job)
        etags.keep_after_commit(read_mark, request.tenant.pk, job, headers)
        if polling.etag_matches(if_none_match, job.etag):
            return _not_modified(headers)
        response = Response(JobOutputSerializer(job).data, headers=headers)
        patch_vary_headers(response, ("Authorization",))
        return response

    def _long_poll(self, request, job_id: uuid.UUID, if_none_match: str | None):
        """``?wait=N`` (jobs.api.realtime.longpoll): answered as a poll, from the job's first
        state, which the long polls and streams of the job starting together in this process
        share (``fanout.first_state``), with the wait attached (``longpoll.defer``)."""
        wait = longpoll.wait_seconds(request.query_params)
        # Answered again by the chain once its wait ended without a state (the job gone, its
        # grant revoked), a long poll reads afresh and waits no more (``longpoll.defer``).
        again = getattr(request, "long_poll_done", False)
        seq = None if again else longpoll.listen_before_read()
        state = fanout.first_state(request.tenant, job_id, seq)
        if polling.etag_matches(if_none_match, state.etag):
            response = _not_modified(state.headers)
        else:  # the JSON a GET renders (fanout.snapshot_of)
            response = HttpResponse(
                state.body, content_type="application/json", headers=state.headers
            )
            patch_vary_headers(response, ("Authorization",))
        longpoll.defer(request, response, state=state, wait=wait, seq=seq)
        return response

    def create(self, request):
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = _idempotency_key(request)
        read_token = wants_read_token(request.query_params)
        if key:
            job, created = services.job_enqueue_once(
                tenant=request.tenant,
                idempotency_key=key,
                created_by=request.user,
                quota=settings.JOBS_MAX_UNFINISHED_PER_TENANT,
                **serializer.validated_data,
            )
        else:
            job = services.job_enqueue(
                tenant=request.tenant,
                created_by=request.user,
                quota=settings.JOBS_MAX_UNFINISHED_PER_TENANT,
                **serializer.validated_data,
            )
            created = True
        # A replayed request gets 202 while its job is unfinished, 200 once it is final.
        code = status.HTTP_200_OK if not created and job.is_final else status.HTTP_202_ACCEPTED
        headers = {"Location": f"/api/jobs/{job.id}"}
        if read_token:
            headers[READ_TOKEN_HEADER] = read_token_for(request, job)
        return Response(JobOutputSerializer(job).data, status=code, headers=headers)

    @action(detail=False, methods=["post"], url_path="batch")
    def batch(self, request):
        """``POST /api/jobs/batch``: all the jobs or none, one INSERT, one NOTIFY. A batch
        costs a unit of rate limit per job, valid or not, charged before its jobs are
        checked (checking them is the work); a body that is no list of jobs, or no JSON,
        costs one."""
        try:
            data = request.data
        except APIException:
            charge_rate_limit_units(request, 1)
            raise
        charge_rate_limit_units(request, batch_size(data) or 1)
        serializer = JobBatchCreateSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        key = _idempotency_key(request)
        jobs, created = services.jobs_enqueue_batch(
            tenant=request.tenant,
            items=serializer.validated_data["jobs"],
            created_by=request.user,
            idempotency_key=key,
            quota=settings.JOBS_MAX_UNFINISHED_PER_TENANT,
        )
        replayed_final = not created and all(job.is_final for job in jobs)
        return Response(
            JobBatchOutputSerializer({"jobs": jobs}).data,
            status=status.HTTP_200_OK if replayed_final else status.HTTP_202_ACCEPTED,
        )

    @action(detail=True, methods=["get"])
    def logs(self, request, pk=None):
        """``GET /api/jobs/{id}/logs``: what the job's handler logged (``jobs.worker.logs``)."""
        log = selectors.job_log(tenant=request.tenant, job_id=_job_id(pk))
        return Response(JobLogSerializer(log).data)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        outcome = services.job_cancel(tenant=request.tenant, job_id=_job_id(pk))
        code = status.HTTP_200_OK if outcome.finished else status.HTTP_202_ACCEPTED
        return Response(JobOutputSerializer(outcome.job).data, status=code)


@schema.me_schema  # documentation only (jobs/api/schema.py)
class MeView(RateLimitedView, APIView):
    """``GET /api/me``: who the token's user is, on which tenant and plan. Read from the
    authenticated request (no query); rate-limited like any read."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication and permissions first
        check_rate_limit(request)

    def get(self, request):
        return Response(MeSerializer(request).data)
