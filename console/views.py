"""The two HTML pages: the job console at ``/`` on tenant hosts, and the platform's front
page at ``/`` on the public host.

The console is a template plus one static ES module (``console/static/console/console.js``) that
uses the JSON API exactly as a single-page app would: it logs in with a JWT, submits jobs
and polls them. The view only hands the module what it cannot discover by itself, as a
JSON block (no inline script, so the page runs under a strict Content-Security-Policy).
"""

import json

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.shortcuts import render
from django.urls import Resolver404, resolve
from django.utils.csp import CSP, build_policy
from django.views.decorators.http import require_safe

from jobs.registry import job_types

# A payload to start from for each demo type; types registered later start from ``{}``.
SAMPLE_PAYLOADS = {
    "demo.echo": {"message": "hello"},
    "demo.fail": {},
    "demo.sleep": {"seconds": 10},
    "ai_generation": {"prompt": "Quarterly report"},
}

# Everything the pages load comes from this origin; nothing inline, nothing framed.
PAGE_CSP = build_policy(
    {
        "default-src": [CSP.NONE],
        "script-src": [CSP.SELF],
        "style-src": [CSP.SELF],
        "img-src": [CSP.SELF],
        "connect-src": [CSP.SELF],
        "form-action": [CSP.SELF],
        "base-uri": [CSP.NONE],
        "frame-ancestors": [CSP.NONE],
    }
)


def _route_exists(request, path: str) -> bool:
    try:
        resolve(path, urlconf=getattr(request, "urlconf", None))
    except Resolver404:
        return False
    return True


def _with_csp(response):
    # Set by the view, so a site-wide CSP middleware added later leaves it alone.
    response.headers[str(CSP.HEADER_ENFORCE)] = PAGE_CSP
    return response


@require_safe
def console(request):
    """The job console of ``request.tenant``: anonymous HTML; the module logs in itself."""
    api = {
        "token": "/api/auth/token",
        "refresh": "/api/auth/token/refresh",
        "jobs": "/api/jobs",
        # One stream of the tenant's job changes for the page (long polls when it fails).
        # Only the ASGI server serves streams (WSGI answers them 503), so a page served
        # under WSGI long-polls from the start instead of logging a refused request.
        "events": (
            "/api/events"
            if isinstance(request, ASGIRequest) and _route_exists(request, "/api/events")
            else None
        ),
        # Revoking the refresh token on log out, where the service offers it.
        "logout": "/api/auth/logout" if _route_exists(request, "/api/auth/logout") else None,
    }
    context = {
        "tenant": request.tenant,
        "job_types": [
            {"name": name, "sample": json.dumps(SAMPLE_PAYLOADS.get(name, {}), indent=2)}
            for name in sorted(job_types())
        ],
        "console_config": {"api": api},
    }
    return _with_csp(render(request, "console/console.html", context))


@require_safe
def platform_home(request):
    """The public host's front page: where the admin, the API docs and the consoles are."""
    context = {"show_demo_hosts": settings.DEBUG, "port": request.get_port()}
    return _with_csp(render(request, "console/platform.html", context))
