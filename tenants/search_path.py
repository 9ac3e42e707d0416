"""Shortcuts for statements that do not depend on the tenant's search_path.

The database backend (``tenants.postgresql_backend``) applies the selected tenant's schema
to each statement or transaction, never to the session, so the schema stays correct behind
a transaction pooler. A statement that names its schema (``public.job_queue``) or reads no
table can skip that: inside ``without_search_path()`` it runs as written, with no
``set_config`` and, outside a transaction, no transaction of its own.
"""

from django.db import connection as default_connection


def without_search_path(connection=default_connection):
    """Run the block's statements without applying the tenant's search_path first."""
    return connection.search_path_independent()
