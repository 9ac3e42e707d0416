"""core.negotiation: the shortcut answers exactly what DRF's own negotiation answers."""

import pytest
from django.test import RequestFactory
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.settings import api_settings

from core.negotiation import DefaultFirstContentNegotiation


class _EventStreamRenderer(JSONRenderer):
    media_type = "text/event-stream"
    format = "sse"


RENDERER_LISTS = [
    [JSONRenderer()],
    [JSONRenderer(), _EventStreamRenderer()],
    [_EventStreamRenderer(), JSONRenderer()],
    [BrowsableAPIRenderer(), JSONRenderer()],
]
ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "application/json; indent=4",
    "text/event-stream",
    "text/html",
    "application/*",
    "text/csv",
    "*/*; q=0.5, text/event-stream",
    "",
]


def _outcome(negotiation, request, renderers, suffix):
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, suffix)
    except Exception as error:  # the error (406, 404) is part of what is compared
        return type(error)
    return type(renderer), media_type


@pytest.mark.parametrize("renderers", RENDERER_LISTS)
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize(("query", "suffix"), [("", None), ("format=sse", None), ("", "json")])
def test_the_shortcut_answers_as_drf_does(renderers, accept, query, suffix):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(RequestFactory().get(f"/api/jobs/x?{query}", **headers))
    expected = _outcome(DefaultContentNegotiation(), request, renderers, suffix)
    fresh = Request(RequestFactory().get(f"/api/jobs/x?{query}", **headers))
    assert _outcome(DefaultFirstContentNegotiation(), fresh, renderers, suffix) == expected


def test_the_api_negotiates_with_the_shortcut():
    assert api_settings.DEFAULT_CONTENT_NEGOTIATION_CLASS is DefaultFirstContentNegotiation
