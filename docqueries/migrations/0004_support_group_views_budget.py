"""The Support group (patients 0002) may view customers' Document Query budgets (operators change them)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    Group, Permission = apps.get_model("auth", "Group"), apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="Support").first()
    if group is None:
        return
    app_config = apps.get_app_config("docqueries")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    group.permissions.add(
        Permission.objects.get(content_type__app_label="docqueries", codename="view_documentquerybudget")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("docqueries", "0003_document_query_budget"),
        ("patients", "0002_support_group"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
