"""The strict request body, defined once for every API: a JSON object of exactly the
fields a serializer declares as writable. Anything else is a 400 before any field is read,
so a client learns at once that what it sent was not used."""

from rest_framework import serializers

# Most entries one refused request reports (unknown fields, invalid items of a batch; the
# rest are counted), so an error body stays small whatever the request holds.
MAX_REPORTED_ERRORS = 10


class StrictSerializer(serializers.Serializer):
    """Refuses a body that is not a JSON object, and one with a field it does not declare
    writable: one ``Unknown field.`` error per such field, the first
    ``MAX_REPORTED_ERRORS`` of them, with their count under ``non_field_errors`` when there
    are more."""

    def to_internal_value(self, data):
        self.refuse_unknown_fields(data)
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
