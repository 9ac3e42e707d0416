"""The strict request body, defined once for every API: a JSON object of exactly the
fields a serializer declares as writable, each of the JSON type its schema states.
Anything else is a 400 before any field is read, so a client learns at once that what it
sent was not used."""

import re

from rest_framework import serializers

# Most entries one refused request reports (unknown fields, invalid items of a batch; the
# rest are counted), so an error body stays small whatever the request holds.
MAX_REPORTED_ERRORS = 10

# RFC 3339's date-time, the schema's ``format: date-time``: a date, ``T``, a time with its
# seconds, and its offset (``Z`` or ±hh:mm; upper case, as Python's parser reads it). The
# field's own parsing then checks the values.
_RFC3339_DATE_TIME = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)", re.ASCII
)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value) -> bool:
    """An integer, or a number with no fraction (JSON Schema's integer: 5.0 is one)."""
    return _is_number(value) and (isinstance(value, int) or value.is_integer())


# The JSON type a field of each kind takes, as its schema states it, and the error for
# another (DRF's fields read more: "5" as 5, 5 as "5", "yes" as true, a bare date or a
# time without its offset as a date-time). The first kind a field is an instance of holds.
_JSON_TYPES = (
    (serializers.BooleanField, lambda value: isinstance(value, bool), "Must be true or false."),
    (serializers.IntegerField, _is_integer, "Must be a JSON integer."),
    (serializers.FloatField, _is_number, "Must be a JSON number."),
    (
        serializers.DateTimeField,
        lambda value: isinstance(value, str) and _RFC3339_DATE_TIME.fullmatch(value) is not None,
        "Must be a date-time with its offset, such as 2027-01-31T09:30:00Z (RFC 3339).",
    ),
    (
        serializers.CharField | serializers.UUIDField,
        lambda value: isinstance(value, str),
        "Must be a JSON string.",
    ),
)


def mistyped_fields(serializer: serializers.Serializer, data: dict) -> dict[str, list[str]]:
    """The errors of the writable fields of ``serializer`` whose value in ``data`` (a
    JSON object, read) is not of the JSON type the field's schema states; null is left to
    the field (``allow_null``)."""
    errors = {}
    for name, field in serializer.fields.items():
        if field.read_only or data.get(name) is None:
            continue
        for kind, fits, message in _JSON_TYPES:
            if isinstance(field, kind):
                if not fits(data[name]):
                    errors[name] = [message]
                break
    return errors


class StrictSerializer(serializers.Serializer):
    """Refuses a body that is not a JSON object, and one with a field it does not declare
    writable: one ``Unknown field.`` error per such field, the first
    ``MAX_REPORTED_ERRORS`` of them, with their count under ``non_field_errors`` when there
    are more. Then a field whose value is not of its JSON type (``mistyped_fields``),
    unless ``json_typed`` is False: a query's values are text."""

    json_typed = True

    def to_internal_value(self, data):
        self.refuse_unknown_fields(data)
        if self.json_typed and (mistyped := mistyped_fields(self, data)):
            raise serializers.ValidationError(mistyped)
        return super().to_internal_value(data)

    def refuse_unknown_fields(self, data) -> None:
        """The check alone, for a subclass that reads the fields itself."""
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        writable = {name for name, field in self.fields.items() if not field.read_only}
        unknown = sorted(set(data) - writable)
        if not unknown:
            return
        errors = {name: ["Unknown field."] for name in unknown[:MAX_REPORTED_ERRORS]}
        if len(unknown) > MAX_REPORTED_ERRORS:
            errors["non_field_errors"] = [
                f"{len(unknown)} unknown fields; the first {MAX_REPORTED_ERRORS} are listed."
            ]
        raise serializers.ValidationError(errors)
