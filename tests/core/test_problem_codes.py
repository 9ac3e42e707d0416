"""Every problem ``code`` a client can get is a ``core.problems.ProblemCode``, and every
member of it is one a client can get.

The sources of codes, each swept: the service's own code (read with ``ast``: literals and
``ProblemCode`` references), the exception classes of DRF and simplejwt (through the one
exception handler), and the codes those libraries raise on our request path (over HTTP).
``problem_body`` refuses any other code, so a new one fails here and in whichever test
reaches it.
"""

import ast
import inspect

import pytest
from rest_framework import exceptions as drf_exceptions
from rest_framework_simplejwt import exceptions as simplejwt_exceptions

from core.errors import problem_exception_handler
from core.problems import ProblemCode, codes_of, problem_body
from tests.config.test_layout import APPS, ROOT
from tests.conftest import TENANTS, client_for

PROBLEM = "application/problem+json"
# Where a code given by name becomes a problem's ``code``: a call's ``code=`` (except
# ValidationError's, whose codes never leave ``errors``), a class's ``code`` or
# ``default_code``, and a ``{"code": …}`` detail (simplejwt's InvalidToken).
_CODE_ATTRIBUTES = {"code", "default_code"}


def _service_modules():
    for package in (*APPS, "config"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, ast.parse(path.read_text(), filename=str(path))


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _literal_codes(tree: ast.AST):
    """(line, value) of each string given as a problem code in ``tree``."""
    for node in ast.walk(tree):
        values = []
        if isinstance(node, ast.Call) and _call_name(node) != "ValidationError":
            values = [kw.value for kw in node.keywords if kw.arg == "code"]
        elif isinstance(node, ast.ClassDef):
            values = [
                statement.value
                for statement in node.body
                if isinstance(statement, ast.Assign)
                and any(
                    isinstance(target, ast.Name) and target.id in _CODE_ATTRIBUTES
                    for target in statement.targets
                )
            ]
        elif isinstance(node, ast.Dict):
            values = [
                value
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant) and key.value == "code"
            ]
        for value in values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                yield value.lineno, value.value


def _referenced_codes(tree: ast.AST) -> set[ProblemCode]:
    return {
        ProblemCode[node.attr]
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "ProblemCode"
        and node.attr in ProblemCode.__members__
    }


def _library_exceptions() -> list[type[drf_exceptions.APIException]]:
    """DRF's and simplejwt's API exceptions; the bare base class is raised by neither."""
    found = []
    for module in (drf_exceptions, simplejwt_exceptions):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, drf_exceptions.APIException)
                and value is not drf_exceptions.APIException
                and value.__module__ == module.__name__
            ):
                found.append(value)
    return found


def _instance(cls):
    required = [
        parameter
        for name, parameter in inspect.signature(cls).parameters.items()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]
    return cls(*["text/plain" for _ in required])


def _answer(exc):
    response = problem_exception_handler(exc, {"request": None})
    return response.status_code, ProblemCode(response.data["code"])


# Codes DRF and simplejwt raise by name on our request path, as the requests that get them:
# (name, alice's token?, method, request arguments, status, code), all on /api/jobs.
LIBRARY_REQUESTS = [
    ("no token", False, "get", {}, 401, ProblemCode.NOT_AUTHENTICATED),
    (
        "three-part header",
        False,
        "get",
        {"HTTP_AUTHORIZATION": "Bearer a b"},
        401,
        ProblemCode.BAD_AUTHORIZATION_HEADER,
    ),
    (
        "not a JWT",
        False,
        "get",
        {"HTTP_AUTHORIZATION": "Bearer not-a-jwt"},
        401,
        ProblemCode.TOKEN_NOT_VALID,
    ),
    ("PUT", True, "put", {}, 405, ProblemCode.METHOD_NOT_ALLOWED),
    ("Accept: text/csv", True, "get", {"HTTP_ACCEPT": "text/csv"}, 406, ProblemCode.NOT_ACCEPTABLE),
    (
        "text body",
        True,
        "post",
        {"data": "x", "content_type": "text/plain"},
        415,
        ProblemCode.UNSUPPORTED_MEDIA_TYPE,
    ),
    (
        "broken JSON",
        True,
        "post",
        {"data": "{", "content_type": "application/json"},
        400,
        ProblemCode.PARSE_ERROR,
    ),
]


def test_the_service_names_no_code_the_enum_lacks():
    unknown = [
        f"{path.relative_to(ROOT)}:{line}: {value!r}"
        for path, tree in _service_modules()
        for line, value in _literal_codes(tree)
        if value not in ProblemCode.__members__.values()
    ]
    assert unknown == []


def test_the_static_sweep_finds_literal_codes():
    """Guards the sweep above against reading nothing."""
    tree = ast.parse(
        "class E(Exception):\n    code = 'a'\n    default_code = 'b'\n"
        "raise Problem(status_code=400, code='c', detail='')\n"
        "raise InvalidToken({'detail': 'x', 'code': 'd'})\n"
        "raise ValidationError('x', code='form-only')\n"
    )
    assert sorted(value for _, value in _literal_codes(tree)) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("cls", _library_exceptions(), ids=lambda cls: cls.__qualname__)
def test_each_library_exception_is_answered_with_a_code_of_its_status(cls):
    status, code = _answer(_instance(cls))
    assert code.status == status


def test_drf_throttling_is_answered_as_our_rate_limit():
    assert _answer(drf_exceptions.Throttled(wait=3)) == (429, ProblemCode.RATE_LIMITED)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("token", "method", "extra", "status", "code"),
    [row[1:] for row in LIBRARY_REQUESTS],
    ids=[row[0] for row in LIBRARY_REQUESTS],
)
def test_library_codes_on_the_request_path_are_in_the_enum(
    alice, token, method, extra, status, code
):
    client = client_for(alice if token else None, host=TENANTS["acme"])
    response = getattr(client, method)("/api/jobs", **extra)
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == code


def test_every_code_is_one_a_client_can_get():
    emitted = set().union(*(_referenced_codes(tree) for _, tree in _service_modules()))
    emitted |= {_answer(_instance(cls))[1] for cls in _library_exceptions()}
    emitted |= {row[-1] for row in LIBRARY_REQUESTS}
    assert set(ProblemCode) - emitted == set()


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "no_such_code"), (404, ProblemCode.INVALID), (400, ProblemCode.NOT_FOUND)],
)
def test_problem_body_refuses_a_code_outside_the_enum_or_its_status(status, code):
    with pytest.raises(ValueError, match=r"ProblemCode|status"):
        problem_body(status_code=status, code=code, detail="x")


def test_each_code_has_one_status_and_a_description():
    for code in ProblemCode:
        assert 400 <= code.status < 600, code
        assert code.description, code
        assert "\n" not in code.description, code
        assert code in codes_of(code.status)
