"""Content negotiation of the API's DRF views."""

from rest_framework.negotiation import DefaultContentNegotiation


class DefaultFirstContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, which parses ``Accept`` on every request, with a shortcut for the
    requests most polls are: no ``?format=`` or format suffix, and no ``Accept``, ``*/*``
    (fetch's and curl's default) or exactly the first renderer's media type. Those get what
    DRF answers them, the first renderer with its media type, without the parsing; every
    other request is negotiated by DRF."""

    def select_renderer(self, request, renderers, format_suffix=None):
        if (
            renderers
            and not format_suffix
            and request.headers.get("Accept", "*/*") in ("*/*", renderers[0].media_type)
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        ):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
