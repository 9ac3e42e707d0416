"""What an admin changelist URL may filter by: values Django can check before the query.

Django applies any lookup on a model's own fields that a URL names (``?worker_id=…``,
``?type__regex=…``) and validates the values it can convert; what it cannot check ends in
a 500 when PostgreSQL or Python evaluates the query: a NUL character (PostgreSQL text
cannot hold one), a bad pattern (``__regex=(``), a transform's out-of-range value
(``__year=99999999``). ``CheckedLookupsMixin`` closes that gap for a ``ModelAdmin``:

- a parameter name or value with NUL is an invalid filter: Django's redirect to ``?e=1``;
- a field may be followed by one plain comparison only (``exact``, ``in``, ``gte``,
  ``contains``…), across relations too; a transform or pattern is a disallowed lookup,
  which Django answers with 400 (the project's problem document);
- an array field (a job's flow-control budgets) is no filter at all: its values are array
  literals Django does not check, and the admin offers no such filter.
"""

from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import FieldDoesNotExist
from django.db.models.constants import LOOKUP_SEP

PLAIN_LOOKUPS = frozenset(
    {
        "exact",
        "iexact",
        "in",
        "isnull",
        "gt",
        "gte",
        "lt",
        "lte",
        "range",
        "contains",
        "icontains",
        "startswith",
        "istartswith",
        "endswith",
        "iendswith",
    }
)


def is_plain_lookup(model, lookup: str) -> bool:
    """``field``, or ``field__<plain comparison>``, through any relations. A name that is
    no field at all counts as plain: Django itself refuses it as an invalid filter."""
    parts = lookup.split(LOOKUP_SEP)
    opts = model._meta
    for index, part in enumerate(parts):
        try:
            field = opts.get_field(part)
        except FieldDoesNotExist:
            return index == 0 or (index == len(parts) - 1 and part in PLAIN_LOOKUPS)
        if isinstance(field, ArrayField):
            return False
        if field.related_model is None:  # not a relation (or a generic one): no more fields
            rest = parts[index + 1 :]
            return not rest or (len(rest) == 1 and rest[0] in PLAIN_LOOKUPS)
        opts = field.related_model._meta
    return True


class CheckedLookupsChangeList(ChangeList):
    """Django's changelist, with NUL in a filter's name or value an invalid filter."""

    def get_filters(self, request):
        for name, values in self.get_filters_params().items():
            if "\x00" in name or any("\x00" in value for value in values):
                raise IncorrectLookupParameters(f"NUL character in the filter {name!r}")
        return super().get_filters(request)


class CheckedLookupsMixin:
    """For a ``ModelAdmin``: changelist filters checked as the module docstring says."""

    def get_changelist(self, request, **kwargs):
        return CheckedLookupsChangeList

    def lookup_allowed(self, lookup, value, request):
        return is_plain_lookup(self.model, lookup) and super().lookup_allowed(
            lookup, value, request
        )
