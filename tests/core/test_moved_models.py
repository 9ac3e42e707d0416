"""A model moved to another app with its table takes its content type along
(``core.moved_models``, run by the new apps' first migrations): the permissions granted on
it still hold under the new app label, and unapplying moves it back."""

from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection

from core.moved_models import move_content_types

pytestmark = pytest.mark.django_db


def test_permissions_on_a_moved_model_follow_it_to_its_new_app():
    moved = ContentType.objects.create(app_label="old_room", model="thing")
    untouched = ContentType.objects.create(app_label="old_room", model="other")
    staff = Group.objects.create(name="thing keepers")
    staff.permissions.add(
        Permission.objects.create(codename="change_thing", name="x", content_type=moved)
    )
    operation = move_content_types("old_room", "new_room", ["thing"])
    schema_editor = SimpleNamespace(connection=connection)

    operation.code(apps, schema_editor)
    assert {p.content_type.app_label for p in staff.permissions.all()} == {"new_room"}
    assert Group.objects.filter(
        permissions__content_type__app_label="new_room",
        permissions__codename="change_thing",
    ).exists()
    untouched.refresh_from_db()
    assert untouched.app_label == "old_room"

    operation.reverse_code(apps, schema_editor)
    moved.refresh_from_db()
    assert moved.app_label == "old_room"
