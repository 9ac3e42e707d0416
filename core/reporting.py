"""What Django's error reports (the DEBUG 500 page, error e-mails) may show."""

import re

from django.views.debug import SafeExceptionReporterFilter


class SecretsExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, also masking connection strings, which carry passwords.

    A setting, a ``request.META`` entry (under runserver the whole environment) or a key of
    a dict setting is shown as stars when its name contains Django's own words (KEY, TOKEN,
    PASS…) or URL, DSN or LOCATION: ``DATABASE_URL``, ``REDIS_URL``, ``CACHES``'
    ``LOCATION``, ``DATABASES``' ``PASSWORD``. Local variables of the traceback's frames are
    not filtered (Django filters only those marked ``sensitive_variables``).
    """

    hidden_settings = re.compile(
        f"{SafeExceptionReporterFilter.hidden_settings.pattern}|URL|DSN|LOCATION", flags=re.I
    )
