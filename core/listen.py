"""LISTEN connections, opened to ``DATABASE_DIRECT_URL``, never through the pooler.

``LISTEN`` registers the *server* session for notifications. Behind a transaction pooler
(PgBouncer ``pool_mode = transaction``) the server connection that ran it goes back to the
pool after the statement, so its notifications never reach the client that asked: a
listener through ``DATABASE_URL`` would wait forever. ``DATABASE_DIRECT_URL`` (unset: the
default database's settings, i.e. ``DATABASE_URL``) is PostgreSQL itself; each listening
process opens one such connection (the worker's wake-ups, the long-poll change listener).
"""

import dj_database_url
import psycopg
from django.conf import settings
from django.db import connections
from psycopg import sql


def direct_connection_params(*, application_name: str) -> dict:
    """psycopg connection parameters for ``DATABASE_DIRECT_URL`` (unset: the default
    database's): its database, user, password, host, port and ``ssl*`` options,
    and the TCP options of ``DATABASE_TCP_OPTIONS`` (a bounded connect; keepalives and a user
    timeout, so an idle LISTEN connection whose peer vanished is noticed)."""
    url = settings.DATABASE_DIRECT_URL
    db = dj_database_url.parse(url) if url else connections["default"].settings_dict
    params = {
        "dbname": db.get("NAME"),
        "user": db.get("USER"),
        "password": db.get("PASSWORD"),
        "host": db.get("HOST"),
        "port": db.get("PORT"),
        "application_name": application_name,
        **settings.DATABASE_TCP_OPTIONS,
    }
    for name, value in (db.get("OPTIONS") or {}).items():
        if name.startswith("ssl"):
            params[name] = value
    return {name: value for name, value in params.items() if value not in (None, "")}


def listen(channel: str, *, application_name: str) -> psycopg.Connection:
    """A new autocommit connection to ``DATABASE_DIRECT_URL`` that has run
    ``LISTEN channel``; read it with ``notifies()``. The caller closes it. Raises
    ``psycopg.Error`` when the server cannot be reached."""
    connection = psycopg.connect(
        **direct_connection_params(application_name=application_name), autocommit=True
    )
    try:
        connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    except BaseException:
        connection.close()
        raise
    return connection
