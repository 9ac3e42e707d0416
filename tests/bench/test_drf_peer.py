"""bench/peers/drf_poll, the poll benchmark's hand-written DRF peer, does the poll's work:
it verifies the project's own token and reads only the user's tenant's job (so the
project ÷ peer ratio in bench/RESULTS.md compares like with like). Run in a subprocess,
since the peer configures Django itself."""

import json
import subprocess
import sys
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from accounts.tokens import tokens_for
from jobs import services
from tests.helpers import ROOT

_REQUESTS = """
import json, sys
import bench.peers.drf_poll.wsgi
from django.test import Client

token, paths = sys.argv[1], sys.argv[2:]
client = Client()
answers = []
for path in paths:
    answers.append([])
    for authorization in (f"Bearer {token}", None, "Bearer " + token[:-2] + "xx"):
        headers = {"Authorization": authorization} if authorization else {}
        response = client.get(path, headers=headers)
        answers[-1].append([response.status_code, response.json()])
print(json.dumps(answers))
"""


@pytest.mark.django_db(transaction=True)
def test_the_peer_reads_the_users_tenants_job_with_the_projects_token(acme, globex, alice):
    own = services.job_enqueue(tenant=acme, type="demo.echo", payload={"n": 1})
    other = services.job_enqueue(tenant=globex, type="demo.echo", payload={})
    db = connection.settings_dict
    url = (
        f"postgres://{quote(db['USER'] or '')}:{quote(db['PASSWORD'] or '')}@"
        f"{quote(db['HOST'] or '', safe='')}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = {
        "DATABASE_URL": url,
        "SECRET_KEY": settings.SECRET_KEY,
        "JWT_ISSUER": settings.JWT_ISSUER,
        "JWT_AUDIENCE": settings.JWT_AUDIENCE,
        "PATH": "/usr/bin:/bin",
    }
    token = str(tokens_for(alice).access_token)
    done = subprocess.run(
        [sys.executable, "-c", _REQUESTS, token, f"/api/jobs/{own.id}", f"/api/jobs/{other.id}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (read, anonymous, forged), (foreign, _, _) = json.loads(done.stdout.splitlines()[-1])
    assert read[0] == 200
    assert (read[1]["id"], read[1]["payload"]) == (str(own.id), {"n": 1})
    assert "tenant_id" not in read[1]
    assert anonymous[0] == forged[0] == 401
    assert foreign[0] == 404
