"""The ASGI application with the console's static files served, for browser tests on a
uvicorn process (production serves them from the proxy or ``collectstatic``)."""

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from config.asgi import application as project_application

application = ASGIStaticFilesHandler(project_application)
