"""What a migration runs for models moved to another app with their tables (state-only
moves): their content types move too, so the permissions granted on them and the admin's
history of their rows follow them instead of staying behind on stale content types."""

from django.db import migrations


def move_content_types(from_app: str, to_app: str, models: list[str]) -> migrations.RunPython:
    """An operation relabelling the content types of ``models`` (lower-case model names)
    from ``from_app`` to ``to_app``, and back when unapplied. A database created after the
    move has none to relabel (``post_migrate`` creates them under ``to_app``)."""

    def relabel(source: str, target: str):
        def run(apps, schema_editor) -> None:
            content_types = apps.get_model("contenttypes", "ContentType").objects
            content_types.using(schema_editor.connection.alias).filter(
                app_label=source, model__in=models
            ).update(app_label=target)

        return run

    return migrations.RunPython(relabel(from_app, to_app), relabel(to_app, from_app))
