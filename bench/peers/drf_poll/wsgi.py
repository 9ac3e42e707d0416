"""The peer's settings and WSGI application (``bench/run.py`` gives it the project's
``DATABASE_URL``, ``SECRET_KEY``, ``JWT_ISSUER`` and ``JWT_AUDIENCE``, so the project's
token verifies here)."""

import os

import dj_database_url
from django.conf import settings
from django.core.wsgi import get_wsgi_application

settings.configure(
    DEBUG=False,
    SECRET_KEY=os.environ["SECRET_KEY"],
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF="bench.peers.drf_poll.views",
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "rest_framework",
        "bench.peers.drf_poll",
    ],
    AUTH_USER_MODEL="drf_poll.User",
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
    ],
    DATABASES={"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)},
    USE_TZ=True,
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework_simplejwt.authentication.JWTAuthentication"
        ],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    },
    SIMPLE_JWT={
        "ALGORITHM": "HS256",
        "SIGNING_KEY": os.environ["SECRET_KEY"],
        "ISSUER": os.environ["JWT_ISSUER"],
        "AUDIENCE": os.environ["JWT_AUDIENCE"],
        "USER_ID_CLAIM": "user_id",
    },
)

application = get_wsgi_application()
