"""The queue dashboard (``/admin/jobs/dashboard/``, a page of the admin) and ``GET
/metrics`` (the platform host only, never a tenant's).

The dashboard reads only the rollup, grouped per bin in SQL, plus the live queue (pending
and processing, on its partial indexes): its cost follows the window and the backlog, never
the history in ``job_queue``. Platform staff see every tenant, tenant staff their own
(``accounts.roles.staff_tenant``), or one picked tenant (``?tenant=<id>``). Ranges go from
an hour to 30 days (``insights.selectors.RANGES``); legends give the whole window's totals
and quantiles (p50, p95, p99: within 2% of the exact ones, ``insights.models``); each row
of the breakdown links to its jobs in the job list. Charts are server-rendered SVG; the
page refreshes itself every ``REFRESH_SECONDS``.
"""

import hmac
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_safe

from accounts.roles import ALL_TENANTS, admin_tenant_is_active, is_platform_staff, staff_tenant
from core.problems import ProblemCode, problem_response
from insights import metrics
from insights.charts import HEIGHT, WIDTH, chart, label
from insights.selectors import (
    QUANTILES,
    RANGES,
    Totals,
    db_minute,
    live_queue,
    rollup_series,
)
from tenants.models import Tenant

REFRESH_SECONDS = 30


def _bins(start: datetime, span: timedelta, step: timedelta) -> list[datetime]:
    return [start + step * i for i in range(int(span / step))]


def dashboard_view(request):
    user = request.user
    if not (is_platform_staff(user) or (user.is_staff and admin_tenant_is_active(user))):
        raise PermissionDenied
    tenant, tenants = _scope(request)
    range_name = request.GET.get("range") if request.GET.get("range") in RANGES else "hour"
    span, step = RANGES[range_name]
    since = db_minute() - span + timedelta(minutes=1)
    bins = _bins(since, span, step)
    per_bin = {b: Totals() for b in bins}
    per_queue_type: dict[tuple[str, str], Totals] = {}
    window = Totals()
    for bin_, queue, type_, done, failed, wait, run in rollup_series(
        tenant=tenant, since=since, step=step
    ):
        per_bin.setdefault(bin_, Totals()).add(done, failed, wait, run)
        per_queue_type.setdefault((queue, type_), Totals()).add(done, failed, wait, run)
        window.add(done, failed, wait, run)
    quantiles = [per_bin[b].quantiles() for b in bins]
    overall = window.quantiles()
    per_minute = step / timedelta(minutes=1)
    charts = [
        chart(
            "Completed and failed per minute",
            "",
            bins,
            {
                "completed": [per_bin[b].completed / per_minute for b in bins],
                "failed": [per_bin[b].failed / per_minute for b in bins],
            },
            legends={"completed": str(window.completed), "failed": str(window.failed)},
        ),
        _quantile_chart("Wait time (due → start)", "wait", bins, quantiles, overall),
        _quantile_chart("Run time", "run", bins, quantiles, overall),
    ]
    jobs_url = reverse("admin:jobs_job_changelist")
    picked = {} if tenant is ALL_TENANTS or tenants is None else {"tenant": tenant.pk}
    breakdown = [
        {
            "queue": queue,
            "type": type_,
            "completed": t.completed,
            "failed": t.failed,
            "jobs_url": f"{jobs_url}?{urlencode({'queue': queue, 'type': type_, **picked})}",
            "failed_url": f"{jobs_url}?"
            + urlencode({"queue": queue, "type": type_, "status": "failed", **picked}),
            **{name: _seconds(value) for name, value in t.quantiles().items()},
        }
        for (queue, type_), t in sorted(per_queue_type.items())
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Queue dashboard",
        "scope": "all tenants" if tenant is ALL_TENANTS else tenant.schema_name,
        "tenant_id": None if tenant is ALL_TENANTS else tenant.pk,
        "tenants": tenants,
        "range": range_name,
        "ranges": list(RANGES),
        "refresh": REFRESH_SECONDS,
        "live": live_queue(tenant=tenant),
        "charts": charts,
        "breakdown": breakdown,
        "window_quantiles": overall,
        "width": WIDTH,
        "height": HEIGHT,
    }
    return TemplateResponse(request, "insights/dashboard.html", context)


def _scope(request):
    """``(tenant or ALL_TENANTS, the tenants a picker offers or None)``: tenant staff see
    their own tenant and get no picker; platform staff pick one customer tenant with
    ``?tenant=<id>`` (anything else is a 404) or see all of them."""
    own = staff_tenant(request.user)
    if own is not ALL_TENANTS:
        return own, None
    tenants = list(Tenant.objects.customers().only("pk", "name", "schema_name"))
    wanted = request.GET.get("tenant", "")
    if not wanted:
        return ALL_TENANTS, tenants
    picked = next((t for t in tenants if str(t.pk) == wanted), None)
    if picked is None:
        raise Http404
    return picked, tenants


def _quantile_chart(title, kind, bins, quantiles, overall) -> dict:
    """A chart of a duration's p50, p95 and p99 per bin; its legend gives the whole
    window's."""
    names = [name for name, _ in QUANTILES]
    return chart(
        title,
        "s",
        bins,
        {name: [q[f"{kind}_{name}"] for q in quantiles] for name in names},
        legends={name: _seconds(overall[f"{kind}_{name}"]) for name in names},
    )


def _seconds(value: float | None) -> str:
    return "–" if value is None else label(value, "s")


def _authorized(request) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return True
    supplied = request.headers.get("Authorization", "")
    return hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode())


@require_safe
def metrics_view(request):
    """``GET /metrics``, routed on the public host only; requires ``Authorization: Bearer
    <METRICS_TOKEN>`` when that setting is non-empty (checked before any query)."""
    if not _authorized(request):
        response = problem_response(
            request,
            status_code=401,
            code=ProblemCode.NOT_AUTHENTICATED,
            detail="A valid metrics token is required.",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = metrics.render(request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)
