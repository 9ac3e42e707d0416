"""The one place that reaches into django-tenants' search_path bookkeeping.

With ``TENANT_LIMIT_SET_CALLS``, django-tenants issues ``SET search_path`` before the
first statement after each schema switch and records what it set in the connection's
``search_path_set_schemas`` (None: not set yet). Both helpers below save round trips on
hot paths by adjusting that record; nothing else in the project touches it.
"""

from contextlib import contextmanager

from django.db import connection as default_connection
from django_tenants.utils import tenant_context


@contextmanager
def without_search_path(connection=default_connection):
    """Run statements that depend on no search_path (they name their schema, or no
    table at all) without a ``SET search_path`` first. The record is restored afterwards,
    so the next statement that needs the tenant's path still gets it."""
    previous = connection.search_path_set_schemas
    if previous is None:
        connection.search_path_set_schemas = ["<statement independent of search_path>"]
    try:
        yield
    finally:
        connection.search_path_set_schemas = previous


@contextmanager
def in_tenant_schema(tenant, connection=default_connection):
    """``tenant_context`` that spares code which never queries the database (calls to
    outside services, pure computation) the two ``SET search_path`` round trips: if no
    statement ran in the tenant's schema, the server-side search_path never changed, so
    the record of what was set before is put back."""
    before = connection.search_path_set_schemas
    with tenant_context(tenant):
        try:
            yield
        finally:
            untouched = connection.search_path_set_schemas is None
    if untouched:
        connection.search_path_set_schemas = before
