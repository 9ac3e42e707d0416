"""Hostile changelist filters for the admins of the feature apps' tenant rows (schedules,
webhook endpoints and deliveries), and the staff who send them."""

# Filters from the URL that PostgreSQL cannot evaluate (NUL, patterns, transforms), with a
# ``{field}`` of the changelist, and the answer each gets: Django's invalid-filter redirect
# (302) or 400, never a 500.
HOSTILE_FILTERS = [
    ("{field}=%00", 302),  # NUL in a value: Django's invalid-filter redirect
    ("{field}%00=x", 302),  # NUL in a name
    ("tenant__name=a%00b", 302),
    ("{field}__regex=(", 400),  # a bad pattern
    ("{field}__iregex=%5B", 400),
    ("tenant__name__regex=(", 400),
    ("created_at__year=99999999", 400),  # a transform out of range
]


def staff_clients(acme) -> dict:
    """Admin clients of a superuser and of acme's staff, by who they are."""
    from tests.factories import UserFactory
    from tests.helpers import admin_client_for

    boss = UserFactory(username="boss", is_staff=True, is_superuser=True)
    carol = UserFactory(username="carol", tenant=acme, is_staff=True)
    return {"platform staff": admin_client_for(boss), "tenant staff": admin_client_for(carol)}


def assert_refused(clients: dict, url: str, status: int) -> None:
    """Each client gets ``status`` for ``url``; a redirect is the invalid-filter one."""
    for who, client in clients.items():
        response = client.get(url)
        assert response.status_code == status, (who, url)
        if status == 302:
            assert response["Location"].endswith("?e=1"), (who, url)
