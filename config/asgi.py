"""ASGI entry point: ``uvicorn config.asgi:application``.

Django's ASGI handler with long polls served without a thread per waiting client
(``jobs.api.realtime.longpoll.LongPollASGIHandler``, named by dotted path: config imports no app).
With ``DEBUG`` (``make run``) it also serves ``/static/``, as runserver does; in production
the front proxy serves ``collectstatic``'s copy (docs/operations.md, "Static files").

The collector is tuned for a process holding thousands of waiting clients: everything
loaded at start-up is frozen out of its scans, and young collections run every 50,000
allocations instead of 700. With the defaults, a change answering 3,000 long polls spent
~40% of its time in full collections over every live waiter (py-spy; docs/architecture.md,
"Fan-out").
"""

import gc
import os

import django
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.utils.module_loading import import_string

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

application = import_string("jobs.api.realtime.longpoll.LongPollASGIHandler")()
if settings.DEBUG:
    application = ASGIStaticFilesHandler(application)
gc.freeze()
gc.set_threshold(50_000, 20, 20)
