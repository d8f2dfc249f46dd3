"""The Support group (patients 0002) may view cohorts, memberships, cohort policies and idempotency keys."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEWS = {"cohorts": ("cohort", "patientcohort", "cohortpolicy"), "idempotency": ("idempotencykey",)}


def grant(apps, schema_editor):
    Group, Permission = apps.get_model("auth", "Group"), apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="Support").first()
    if group is None:
        return
    for label in VIEWS:
        app_config = apps.get_app_config(label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    for label, models in VIEWS.items():
        for model in models:
            group.permissions.add(Permission.objects.get(content_type__app_label=label, codename=f"view_{model}"))


class Migration(migrations.Migration):
    dependencies = [
        ("cohorts", "0001_initial"),
        ("idempotency", "0001_initial"),
        ("patients", "0002_support_group"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
