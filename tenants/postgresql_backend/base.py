"""django-tenants' PostgreSQL backend with every tenant search_path scoped to a transaction.

django-tenants selects a tenant's schema with a session-level ``SET search_path``. Behind a
transaction pooler (PgBouncer in transaction mode, RDS Proxy, Supabase's pooler) one Django
connection's transactions run on whichever server connection is free, so a session setting
made for one tenant is inherited by another client: that tenant's writes land in another
tenant's schema. This backend never changes the session's search_path:

- inside a transaction, the first statement that needs another path than the one in force
  is preceded by ``set_config('search_path', …, true)``, which ends with the transaction;
- a statement outside any transaction (autocommit) that needs a tenant's schema runs in a
  transaction of its own: ``BEGIN`` and the ``set_config`` in one round trip, the statement,
  ``COMMIT``;
- public-schema statements outside a transaction need nothing: the session keeps the
  server's default path, which resolves unqualified names to ``public``.

So no statement relies on a setting made in an earlier transaction. See
docs/architecture.md, "Tenant schemas behind a pooler".

``begin_with`` opens a transaction with ``BEGIN`` and the caller's settings in one round
trip (psycopg alone sends ``BEGIN`` on its own before the first statement), and serves as
the connection's health check: the request middleware uses it for each tenant-host request.
``read_as_transaction`` sends a read that is a deferred transaction's only statement with
that transaction whole: ``BEGIN``, its settings, the read and ``COMMIT`` in one round trip.
"""

from contextlib import contextmanager

from django.db import DatabaseError
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.transaction import TransactionManagementError
from django_tenants.postgresql_backend import base as tenants_base
from django_tenants.utils import get_public_schema_name, quote_schema_name
from psycopg import ClientCursor, pq
from psycopg import sql as psycopg_sql

_SET_LOCAL = "SELECT set_config('search_path', %s, true)"


class DatabaseWrapper(tenants_base.DatabaseWrapper):
    """The schema chosen with ``set_tenant``/``tenant_context`` applies per statement or per
    transaction, never to the session (module docstring)."""

    def __init__(self, *args, **kwargs):
        # The search_path set_config() put in force in the open transaction (None: the
        # session's default, i.e. public). Reset whenever the transaction ends.
        self.transaction_search_path = None
        # > 0 while statements that name their schemas run (search_path_independent()).
        self._independent_depth = 0
        # True from begin_with() until the next autocommit change: the server transaction
        # was opened by this backend, so psycopg is left in autocommit (no BEGIN of its own).
        self._begun_with = False
        # Set by row security for a request that may need no statement at all: opens the
        # request's transaction, run once before the first statement (open_deferred()). Its
        # ``settings()`` is the statement that opening sends after BEGIN, as literal SQL
        # (read_as_transaction() sends it with a read instead).
        self.open_before_statement = None
        super().__init__(*args, **kwargs)

    # --- what the current schema needs ---------------------------------------------

    def search_path_value(self) -> str:
        """The selected schema's search_path, as set_config() takes it."""
        return ",".join(quote_schema_name(name) for name in self._get_cursor_search_paths())

    def wanted_search_path(self) -> str | None:
        """The search_path the selected schema needs; None for the public schema, which
        the session's default path serves."""
        if self.schema_name == get_public_schema_name():
            return None
        return self.search_path_value()

    @contextmanager
    def search_path_independent(self):
        """Statements in the block name their schema (or touch no table): they run as they
        are, without a transaction or set_config of their own."""
        self._independent_depth += 1
        try:
            yield
        finally:
            self._independent_depth -= 1

    # --- django-tenants' session-level SET, replaced --------------------------------

    def _handle_search_path(self, cursor=None):
        """Never a session-level ``SET``: the path is applied per statement (_scoped)."""

    @contextmanager
    def scoped(self):
        """Around one statement: make the selected schema's path apply to it alone."""
        if self._independent_depth or self._setting_search_path:
            yield
            return
        wanted = self.wanted_search_path()
        if not self.get_autocommit():
            if wanted != self.transaction_search_path:
                self._bookkeeping(_SET_LOCAL, [self.search_path_value()])
                self.transaction_search_path = wanted
            yield
            return
        if wanted is None:
            yield
            return
        if self.connection.info.transaction_status != pq.TransactionStatus.IDLE:
            # A transaction opened on the driver's connection directly: Django keeps no
            # record of it, so the path is set for each statement.
            self._bookkeeping(_SET_LOCAL, [wanted])
            yield
            return
        # Autocommit and a tenant's schema: a transaction for this statement alone. The
        # path is a literal (schema names are validated by django-tenants and quoted here),
        # so the two statements go as one simple query, one round trip.
        begin = psycopg_sql.SQL("BEGIN; SELECT set_config('search_path', {}, true)").format(
            psycopg_sql.Literal(wanted)
        )
        self._bookkeeping(begin.as_string(self.connection), None)
        try:
            yield
        except BaseException:
            self._end_statement_transaction("ROLLBACK")
            raise
        self._end_statement_transaction("COMMIT")

    def _end_statement_transaction(self, command: str) -> None:
        try:
            self._bookkeeping(command, None)
        except Exception:
            if command == "COMMIT":
                raise
            # ROLLBACK on a broken connection: the server ends the transaction anyway.

    def _bookkeeping(self, statement: str, params, rows_of: int | None = None):
        """Run one of this backend's own statements on a cursor of its own (a named cursor
        can run only one statement), logged and wrapped like any other. ``rows_of``: the
        index of the statement (of several, sent as one simple query) whose rows to return."""
        self._setting_search_path = True
        try:
            wrapper = CursorDebugWrapper if self.queries_logged else CursorWrapper
            with self.connection.cursor() as raw:
                wrapper(raw, self).execute(statement, params)
                if rows_of is None:
                    return None
                for _ in range(rows_of):
                    raw.nextset()
                return raw.fetchall()
        finally:
            self._setting_search_path = False

    # --- a transaction opened with its settings in one round trip -------------------

    def begin_with(self, statement: str) -> None:
        """Send ``BEGIN; <statement>`` as one simple query, outside any atomic block;
        the caller enters ``transaction.atomic()`` right after, which then sends nothing.

        ``statement`` must hold literals only (no parameters). It also stands for Django's
        health check (CONN_HEALTH_CHECKS): on a connection that fails it, the connection is
        replaced and the statement sent once more.
        """
        self._send_opening(f"BEGIN; {statement}")
        self._begun_with = True

    def read_as_transaction(self, statement: str, params) -> list[tuple] | None:
        """The rows of ``statement``, a read, sent as the deferred transaction
        (``open_before_statement``) whole when that is still to be opened: ``BEGIN``, its
        settings, the read and ``COMMIT`` go as one simple query, one round trip, which
        stands for the health check as ``begin_with`` does. The transaction is then over
        and the deferred one still to be opened: a later statement opens it, with its
        settings. None, with nothing sent, when there is no deferred transaction (the
        caller runs the read as any other).

        For a read that is its request's only statement: it sees the rows the settings
        let it see, and nothing it read can be rolled back afterwards.
        """
        # First: a process's first connection checks the server's version with a
        # statement, which opens the deferred transaction (then there is none left here).
        self.ensure_connection()
        deferred = self.open_before_statement
        if deferred is None or self.in_atomic_block:
            return None
        read = ClientCursor(self.connection).mogrify(statement, params)
        return self._send_opening(f"BEGIN; {deferred.settings()}; {read}; COMMIT", rows_of=2)

    def _send_opening(self, statements: str, rows_of: int | None = None):
        """Send ``statements`` (literals only, one simple query), which open a transaction,
        standing for Django's health check: on a connection that fails them, the
        connection is replaced and they are sent once more. A transaction they leave open
        on failure is rolled back."""
        self.validate_no_atomic_block()
        retry = self.connection is not None and self.health_check_enabled
        retry = retry and not self.health_check_done
        self.health_check_done = True
        self.ensure_connection()
        try:
            return self._bookkeeping(statements, None, rows_of)
        except DatabaseError:
            if not retry or not self.connection.closed:
                self._roll_back_failed_opening()
                raise
        self.close()
        self.ensure_connection()
        try:
            return self._bookkeeping(statements, None, rows_of)
        except DatabaseError:
            self._roll_back_failed_opening()
            raise

    def _roll_back_failed_opening(self) -> None:
        if self.connection.info.transaction_status != pq.TransactionStatus.IDLE:
            self._end_statement_transaction("ROLLBACK")

    def open_deferred(self) -> None:
        """Open the transaction row security deferred (``open_before_statement``), once."""
        opener, self.open_before_statement = self.open_before_statement, None
        if opener is not None:
            opener()

    def _cursor(self, name=None):
        # Before Django's health check: begin_with() stands for it (and replaces a dead
        # connection before any cursor is made on it).
        self.open_deferred()
        return super()._cursor(name)

    def _set_autocommit(self, autocommit):
        if not autocommit and self.open_before_statement is not None:
            # An atomic block entered first would hold the statements that the deferred
            # transaction (its role and tenant) must hold: refused, never run without them.
            raise TransactionManagementError(
                "A transaction was entered before the deferred row-security transaction "
                "was opened: call connection.open_deferred() first."
            )
        if self._begun_with:
            # atomic() entering a transaction begin_with() opened (psycopg stays in
            # autocommit: it must not send a BEGIN of its own), or leaving it once the
            # COMMIT or ROLLBACK has been sent.
            self._begun_with = autocommit is False
            if not autocommit:
                return
        super()._set_autocommit(autocommit)

    # --- the transaction's record ---------------------------------------------------

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self.transaction_search_path = None

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self.transaction_search_path = None

    def savepoint_rollback(self, sid):
        try:
            super().savepoint_rollback(sid)
        finally:
            # The set_config() may have been made after the savepoint: undone with it.
            self.transaction_search_path = None

    def close(self):
        self.transaction_search_path = None
        self._begun_with = False
        super().close()

    def make_cursor(self, cursor):
        return _ScopedCursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor):
        return _ScopedCursorDebugWrapper(cursor, self)


class _ScopedMixin:
    def execute(self, sql, params=None):
        with self.db.scoped():
            return super().execute(sql, params)

    def executemany(self, sql, param_list):
        with self.db.scoped():
            return super().executemany(sql, param_list)

    def callproc(self, procname, params=None, kparams=None):
        with self.db.scoped():
            return super().callproc(procname, params, kparams)


class _ScopedCursorWrapper(_ScopedMixin, CursorWrapper):
    pass


class _ScopedCursorDebugWrapper(_ScopedMixin, CursorDebugWrapper):
    pass
