"""Row-level security: the database's own wall between tenants, behind the tenant filters.

Every tenant-facing query already filters by tenant (``jobs.selectors``). This module
makes PostgreSQL enforce the same rule, so one forgotten filter cannot leak another
tenant's rows. Migration ``jobs/0005_row_level_security`` creates two roles and the
policies, ``jobs/0007_web_role_least_privilege`` the web role's grants; see docs/security.md,
"Security" and "Database roles". It stops a forgotten filter, not injected SQL: a statement
on the connection can ``RESET ROLE`` (or ``set_config('role', 'none', …)``) back to the
login role, which sees every tenant's rows.

- ``tenant_jobs_web`` (NOLOGIN, no BYPASSRLS, owns nothing): web requests on a tenant host
  run their statements as this role. The policies on ``job_queue`` and ``accounts_user``
  show it only the rows whose ``tenant_id`` equals the transaction's ``app.tenant_id``;
  writes of other tenants' rows fail their ``WITH CHECK``. No setting → no rows. It holds
  only what tenant-host requests use: SELECT on ``tenants_tenant``; SELECT and UPDATE of
  ``password`` on ``accounts_user``; SELECT, INSERT, UPDATE on ``job_queue``; SELECT,
  INSERT on the token blacklist's two tables. No other table, no DELETE, no sequence, no
  tenant schema, no default privileges for tables created later.
- ``tenant_jobs_service`` (NOLOGIN): the explicit bypass. A policy gives its members every
  row; the role that runs the migrations (the application's login role) is made a member.
  Workers, the admin on the platform host, management commands and migrations run as that
  login role, i.e. through this policy, never as the web role.

``TenantRowSecurityMiddleware`` runs each tenant-host request in one transaction that
starts with ``set_config('role', …, true)`` and ``set_config('app.tenant_id', …, true)``:
transaction-local settings, gone at COMMIT or ROLLBACK, so a pooled or persistent
connection never carries them to the next request. The same statement sets
``idle_in_transaction_session_timeout`` (``DB_IDLE_IN_TRANSACTION_TIMEOUT``) for the
transaction: PostgreSQL ends a web request's session that leaves its transaction idle that
long, so a stuck request cannot hold locks and a backend indefinitely. (``ALTER ROLE … SET``
would not do: it applies at login, and the web role is entered with ``set_config``.) When
the transaction is the block's own, ``BEGIN`` travels with that statement, in one round
trip (``DatabaseWrapper.begin_with``). Superusers and BYPASSRLS roles ignore
RLS even when FORCEd; that is why the web role is a separate, unprivileged role.
"""

import functools
from contextlib import contextmanager

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from psycopg import sql as psycopg_sql

from tenants.search_path import without_search_path

WEB_ROLE = "tenant_jobs_web"
SERVICE_ROLE = "tenant_jobs_service"
TENANT_SETTING = "app.tenant_id"

# One statement, one round trip: the role, the tenant, the tenant's search_path and the
# idle timeout, all local to the transaction (the database backend then has nothing left
# to set). Parameters in a transaction someone else opened; literals after BEGIN.
_ENTER_SQL = (
    "SELECT set_config('role', {}, true), set_config({}, {}, true),"
    " set_config('search_path', {}, true),"
    " set_config('idle_in_transaction_session_timeout', {}, true)"
)
_RESTORE_SQL = (
    "SELECT set_config('role', %s, true), set_config(%s, %s, true),"
    " set_config('idle_in_transaction_session_timeout', %s, true)"
)
_CURRENT_SQL = (
    "SELECT current_setting('role'), coalesce(current_setting(%s, true), ''),"
    " current_setting('idle_in_transaction_session_timeout')"
)


def _settings(connection, tenant) -> list[str]:
    timeout = f"{settings.DB_IDLE_IN_TRANSACTION_TIMEOUT}s"
    return [WEB_ROLE, TENANT_SETTING, str(tenant.pk), connection.search_path_value(), timeout]


def _enter(connection, tenant) -> None:
    """The web role's settings, in the transaction already open."""
    with without_search_path(connection), connection.cursor() as cursor:
        cursor.execute(_ENTER_SQL.format(*["%s"] * 5), _settings(connection, tenant))
    connection.transaction_search_path = connection.wanted_search_path()


def _enter_literal(connection, tenant) -> str:
    """``_ENTER_SQL`` with its values as literals, to follow BEGIN in one simple query."""
    return _enter_literal_of(tuple(_settings(connection, tenant)))


@functools.lru_cache(maxsize=1024)
def _enter_literal_of(values: tuple[str, ...]) -> str:
    """Made once per tenant and process (formatting it was ~7% of a warm poll's CPU). The
    literals need no connection: the values are names, numbers and durations, quoted alike
    on every connection."""
    literals = [psycopg_sql.Literal(value) for value in values]
    return psycopg_sql.SQL(_ENTER_SQL).format(*literals).as_string()


def _begin(connection, tenant) -> None:
    """BEGIN and the web role's settings in one round trip; atomic() must follow."""
    connection.begin_with(_enter_literal(connection, tenant))
    connection.transaction_search_path = connection.wanted_search_path()


@contextmanager
def tenant_row_security(tenant, *, using: str = DEFAULT_DB_ALIAS):
    """Run the block's statements as the web role, seeing only ``tenant``'s rows.

    Opens a transaction (``transaction.atomic``) and yields True. Inside a transaction
    that someone else opened (tests wrap each test in one; so may a caller), it yields
    False: the settings then live in that transaction, and are put back as they were when
    the block ends, since nothing would end them otherwise. Rolling back is then the outer
    owner's business.
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        _begin(connection, tenant)
        with transaction.atomic(using=using):
            yield True
        return

    connection.ensure_connection()
    driver = connection.connection
    # Bookkeeping of the enclosing transaction, not part of a request's work: it runs on
    # the driver's connection, so Django's query log (and the query-budget tests) only see
    # what a production request executes.
    previous = driver.execute(_CURRENT_SQL, [TENANT_SETTING]).fetchone()
    _enter(connection, tenant)
    try:
        yield False
    finally:
        if not connection.needs_rollback:
            try:
                role, tenant_id, timeout = previous
                driver.execute(_RESTORE_SQL, [role, TENANT_SETTING, tenant_id, timeout])
            except psycopg.Error:
                # The transaction failed inside the block: its owner must roll it back,
                # which undoes these settings too.
                pass


class _OnDemand:
    """A block's row-security transaction, opened before its first statement: the
    connection's ``open_before_statement``."""

    def __init__(self, connection, tenant):
        self.connection = connection
        self.tenant = tenant
        self.block = transaction.atomic(using=connection.alias)
        self.opened = False

    def settings(self) -> str:
        """The settings statement, as literal SQL (``DatabaseWrapper.read_as_transaction``)."""
        return _enter_literal(self.connection, self.tenant)

    def __call__(self) -> None:
        _begin(self.connection, self.tenant)
        self.block.__enter__()
        self.opened = True


@contextmanager
def tenant_row_security_on_demand(tenant, *, using: str = DEFAULT_DB_ALIAS):
    """``tenant_row_security``, opened only if the block sends a statement: the transaction
    (its BEGIN and settings, then the statement) starts right before the first one, so a
    block that sends none costs PostgreSQL nothing. Yields a function that tells whether
    the block opened its transaction; it is committed when the block ends (rolled back on an
    exception). Inside a transaction someone else opened it is ``tenant_row_security``, and
    the function says False (the transaction is not the block's own).

    A read that is the block's only statement may carry the whole transaction instead
    (``DatabaseWrapper.read_as_transaction``: BEGIN, the settings, the read, COMMIT in one
    round trip); the transaction is then still to be opened, by any later statement.

    Nothing in the block may enter ``transaction.atomic`` before its first statement: the
    database backend refuses it (``TransactionManagementError``), since that transaction
    would run without the role and tenant."""
    connection = connections[using]
    if connection.in_atomic_block:
        with tenant_row_security(tenant, using=using) as owns_transaction:
            yield lambda: owns_transaction
        return

    on_demand = _OnDemand(connection, tenant)
    connection.open_before_statement = on_demand
    try:
        yield lambda: on_demand.opened
    except BaseException as error:
        connection.open_before_statement = None
        if on_demand.opened:
            on_demand.block.__exit__(type(error), error, error.__traceback__)  # rolls back
        raise
    connection.open_before_statement = None
    if on_demand.opened:
        on_demand.block.__exit__(None, None, None)


class TenantRowSecurityMiddleware:
    """Runs every request on a tenant host inside ``tenant_row_security(request.tenant)``.

    Place right after the tenant middleware. The platform host (public schema: admin,
    metrics) keeps the login role: its staff code scopes its own querysets (jobs.selectors).
    A response with a 5xx status rolls the request's transaction back, so a request that
    failed half-way leaves nothing behind.

    A GET's transaction is opened on demand, before its first statement
    (``tenant_row_security_on_demand``), when its view says it may be
    (``row_security_on_demand``: its GETs enter no ``atomic()`` before a statement) or the
    GET is conditional (``If-None-Match``): a poll answered 304 from a validator
    (``jobs.api.etags``) sends no statement, and a plain poll's read carries the whole
    transaction (``jobs.selectors.job_poll_get``), and a long poll (or a stream, under ASGI)
    that starts from a first state another request read
    (``jobs.api.realtime.fanout.first_state``) sends none. Any other view's transaction is
    opened as the view is resolved (``process_view``).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        if tenant is None or tenant.is_platform:
            return self.get_response(request)
        if request.method == "GET":
            with tenant_row_security_on_demand(tenant) as owns_transaction:
                response = self.get_response(request)
                if owns_transaction() and response.status_code >= 500:
                    transaction.set_rollback(True)
            return response
        with tenant_row_security(tenant) as owns_transaction:
            response = self.get_response(request)
            if owns_transaction and response.status_code >= 500:
                transaction.set_rollback(True)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        """Open a GET's deferred transaction now unless it may wait (class docstring)."""
        view = getattr(view_func, "cls", view_func)  # DRF's views name their class
        if not getattr(view, "row_security_on_demand", False):
            if "HTTP_IF_NONE_MATCH" not in request.META:
                connections[DEFAULT_DB_ALIAS].open_deferred()
