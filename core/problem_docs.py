"""The problems page (``/api/docs/problems``, every host): what each problem ``type`` names.

Each ``ProblemCode`` has an entry whose id is the code, so a problem's ``type``
(``/api/docs/problems#<code>``, ``core.problems.problem_type``) leads to its meaning and status.
"""

from django.shortcuts import render
from django.utils.csp import CSP, build_policy
from django.views.decorators.http import require_safe

from core.problems import ProblemCode

_PAGE_CSP = build_policy({"default-src": [CSP.NONE], "base-uri": [CSP.NONE]})


@require_safe
def problem_types(request):
    response = render(request, "core/problems.html", {"codes": list(ProblemCode)})
    response["Content-Security-Policy"] = _PAGE_CSP
    return response
