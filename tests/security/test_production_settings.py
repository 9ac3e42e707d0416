"""DJANGO_ENV=production: required secrets, no DEBUG, HTTPS only, secure cookies, HSTS,
``manage.py check --deploy`` clean, gunicorn with config/gunicorn.conf.py trusting
X-Forwarded-Proto only from FORWARDED_ALLOW_IPS, and no demo data. Each check runs the real
settings module (config.settings) in a child process, as a deployment would."""

import json
import secrets
import subprocess
import sys

import pytest

from accounts.models import User
from tenants.models import Domain, Tenant
from tests.faults import servers
from tests.helpers import ROOT, subprocess_env

pytestmark = pytest.mark.django_db

SHOW_SETTINGS = """
import json
from django.conf import settings as s
print(json.dumps({name: getattr(s, name) for name in (
    "DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER", "SILENCED_SYSTEM_CHECKS")}))
"""


def production_env(**extra: str) -> dict[str, str]:
    env = subprocess_env()  # the test database and Redis
    env.pop("USE_X_FORWARDED_PROTO", None)
    env.update(
        DJANGO_ENV="production",
        DJANGO_SETTINGS_MODULE="config.settings",  # the real settings, not the tests'
        SECRET_KEY=secrets.token_urlsafe(64),
        METRICS_TOKEN=secrets.token_urlsafe(32),
        ALLOWED_HOSTS=".localhost,127.0.0.1",
        DEBUG="1",  # ignored in production
    )
    env.update(extra)
    return env


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_in_production():
    result = manage("check", "--deploy", "--fail-level", "DEBUG", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    # HSTS preload (security.W021) is the operator's opt-in; nothing else is silenced.
    assert "System check identified no issues (1 silenced)." in result.stdout


def test_check_deploy_is_clean_with_preload_too():
    result = manage(
        "check", "--deploy", "--fail-level", "DEBUG", env=production_env(SECURE_HSTS_PRELOAD="1")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_development_settings_would_fail_the_deploy_check():
    """The check is meaningful: the same command fails outside production mode."""
    env = production_env(DJANGO_ENV="development")
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "security.W008" in result.stderr + result.stdout  # no SSL redirect


def test_production_settings_are_hardened():
    result = manage("shell", "--no-imports", "-c", SHOW_SETTINGS, env=production_env())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 365 * 24 * 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": False,
        # Django trusts no forwarded header unless the operator says so.
        "SECURE_PROXY_SSL_HEADER": None,
        "SILENCED_SYSTEM_CHECKS": ["security.W021"],
    }


def test_the_proxy_header_is_trusted_only_when_configured():
    env = production_env(USE_X_FORWARDED_PROTO="1")
    result = manage("shell", "--no-imports", "-c", SHOW_SETTINGS, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["SECURE_PROXY_SSL_HEADER"] == [
        "HTTP_X_FORWARDED_PROTO",
        "https",
    ]


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "REDIS_URL", "METRICS_TOKEN"])
def test_production_refuses_to_start_without(missing):
    env = production_env()
    env.pop(missing)
    result = manage("check", env=env)
    assert result.returncode != 0
    assert f"{missing} must be set when DJANGO_ENV=production" in result.stderr


def test_production_refuses_an_empty_metrics_token():
    """An empty token would leave /metrics open, as an unset one would."""
    result = manage("check", env=production_env(METRICS_TOKEN=""))
    assert result.returncode != 0
    assert "METRICS_TOKEN must be set when DJANGO_ENV=production" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        (
            "SECRET_KEY",
            secrets.token_urlsafe(64)[:49],
            "SECRET_KEY must be at least 50 characters long with at least 5 different ones "
            "when DJANGO_ENV=production",
        ),
        (
            "SECRET_KEY",
            "abcd" * 20,
            "SECRET_KEY must be at least 50 characters long with at least 5 different ones "
            "when DJANGO_ENV=production",
        ),
        (
            "METRICS_TOKEN",
            secrets.token_hex(15),
            "METRICS_TOKEN must be at least 32 characters long when DJANGO_ENV=production",
        ),
        (
            "ALLOWED_HOSTS",
            ".example.com,*",
            "ALLOWED_HOSTS must name the service's hosts, not '*', when DJANGO_ENV=production",
        ),
    ],
    ids=["short-key", "repetitive-key", "short-metrics-token", "any-host"],
)
def test_production_refuses_weak_secrets_and_any_host(name, value, error):
    """A short or repetitive SECRET_KEY (it signs the JWTs), a short METRICS_TOKEN and a
    wildcard ALLOWED_HOSTS stop the process with one line naming the variable, never its
    value; the bars themselves are accepted."""
    result = manage("check", env=production_env(**{name: value}))
    assert result.returncode != 0
    assert f"django.core.exceptions.ImproperlyConfigured: {error}\n" in result.stderr
    assert value not in result.stderr


def test_production_accepts_secrets_at_the_bars():
    env = production_env(SECRET_KEY="abcde" * 10, METRICS_TOKEN="m" * 32)
    result = manage("check", env=env)
    assert result.returncode == 0, result.stderr


def test_seed_demo_refuses_to_run_in_production():
    """It would create a superuser whose password is in the README."""
    before = (User.objects.count(), Tenant.objects.count(), Domain.objects.count())

    result = manage("seed_demo", env=production_env())

    assert result.returncode == 1, result.stdout + result.stderr
    assert "seed_demo refuses to run with DJANGO_ENV=production" in result.stderr
    assert result.stdout == ""
    # The child's writes would be committed, so visible here: there are none.
    assert (User.objects.count(), Tenant.objects.count(), Domain.objects.count()) == before
    assert not User.objects.filter(username__in=["admin", "alice", "bob", "carol"]).exists()


@pytest.mark.parametrize(("trusted", "expect_https"), [("127.0.0.1", True), ("192.0.2.10", False)])
def test_gunicorn_trusts_x_forwarded_proto_only_from_forwarded_allow_ips(
    tmp_path, trusted, expect_https
):
    """Behind a TLS proxy at 127.0.0.1: its X-Forwarded-Proto counts only when that address
    is in FORWARDED_ALLOW_IPS; otherwise the request is plain HTTP and is redirected."""
    web = servers.start_gunicorn(
        env=production_env(FORWARDED_ALLOW_IPS=trusted),
        port=servers.free_port(),
        log_path=tmp_path / "gunicorn.log",
        workers=1,
    )
    try:
        plain = servers.request(web.port, "GET", "/api/jobs", host="acme.localhost")
        assert plain.status == 301
        assert plain.headers["location"] == "https://acme.localhost/api/jobs"

        forwarded = servers.request(
            web.port,
            "GET",
            "/api/jobs",
            host="acme.localhost",
            headers={"X-Forwarded-Proto": "https"},
        )
        if expect_https:
            assert forwarded.status == 401  # served: it wants a token
            assert "includeSubDomains" in forwarded.headers["strict-transport-security"]
        else:
            assert forwarded.status == 301

        # Probes are answered over plain HTTP on any host, never redirected.
        assert servers.request(web.port, "GET", "/healthz", host="10.1.2.3").status == 200
    finally:
        web.stop()
