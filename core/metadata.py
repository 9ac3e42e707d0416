"""DRF metadata for every API view (``REST_FRAMEWORK["DEFAULT_METADATA_CLASS"]``)."""

from rest_framework.metadata import BaseMetadata


class AllowOnlyMetadata(BaseMetadata):
    """``OPTIONS``: 200 with ``Allow`` (set by DRF) and no body; /api/schema describes the
    API. DRF's default would describe a view's ``serializer_class`` as its input (the jobs
    API's is the output shape, with no fields, and fails) and expose view docstrings."""

    def determine_metadata(self, request, view):
        return None
