"""``GET /api/schema`` with a hostile ``?version=``: the API has one version
(``REST_FRAMEWORK["ALLOWED_VERSIONS"]``), and any other value is ignored. It used to go into
``Content-Disposition`` (a newline: 500 on every server; a quote and ``;``: a parameter
injected into the header) and into ``info.version``.

Checked through Django's test client on both hosts, and over real HTTP under gunicorn
(config/gunicorn.conf.py) and uvicorn, whose header checks differ from Django's."""

import json

import pytest
import yaml
from django.conf import settings
from django.test import Client

from tests.faults.servers import free_port, request, start_gunicorn
from tests.helpers import start_uvicorn, stop_process, subprocess_env

VERSION = settings.SPECTACULAR_SETTINGS["VERSION"]
DISPOSITION = f'inline; filename="{settings.SPECTACULAR_SETTINGS["TITLE"]}.yaml"'
# Control characters (each a 500 under some server), a parameter injection, a version that
# does not exist, and a long one (within gunicorn's request line of 4,094 bytes).
HOSTILE = ["%0a", "%0d", "%00", "%01", "%09", "%7f", "%22%3B%20x%3D1", "2", "v" * 2000]
HOSTS = ["acme.localhost", settings.PUBLIC_HOST]


def _assert_the_one_schema(status: int, disposition: str | None, body: bytes) -> None:
    assert status == 200, body[:300]
    assert disposition == DISPOSITION
    assert yaml.safe_load(body)["info"]["version"] == VERSION


@pytest.mark.django_db
@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("version", HOSTILE)
def test_a_hostile_version_gets_the_schema_under_the_test_client(
    acme, public_tenant, host, version
):
    response = Client(HTTP_HOST=host).get(f"/api/schema?version={version}")
    _assert_the_one_schema(
        response.status_code, response.get("Content-Disposition"), response.content
    )


def _sweep(port: int) -> list:
    faults = []
    for host in HOSTS:
        for version in HOSTILE:
            answer = request(port, "GET", f"/api/schema?version={version}", host=host)
            try:
                _assert_the_one_schema(
                    answer.status, answer.headers.get("content-disposition"), answer.body
                )
            except (AssertionError, yaml.YAMLError, TypeError):
                faults.append((host, version[:20], answer.status, answer.headers))
    return faults


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_hostile_version_gets_the_schema_under_gunicorn(tmp_path, acme, public_tenant):
    server = start_gunicorn(
        env=subprocess_env(), port=free_port(), log_path=tmp_path / "gunicorn.log", workers=1
    )
    try:
        faults = _sweep(server.port)
    finally:
        server.stop()
    assert faults == [], json.dumps(faults, default=str)[:2000]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_hostile_version_gets_the_schema_under_uvicorn(acme, public_tenant):
    server = start_uvicorn()
    try:
        faults = _sweep(server.port)
    finally:
        stop_process(server)
    assert faults == [], json.dumps(faults, default=str)[:2000]
