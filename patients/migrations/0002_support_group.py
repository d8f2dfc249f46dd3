"""The "Support" group: read-only access to every admin page of the service, PHI included, plus redelivery of
webhook messages (SPEC §4: support can redeliver; every field of a message stays read-only)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

SUPPORT_GROUP = "Support"
APPS = ("patients", "bulkimport", "webhooks", "docqueries")
MODELS = {
    "patients": ("customer", "apikey", "facility", "patient", "patientfacility"),
    "bulkimport": ("bulkrequest", "bulkrow", "bulkrowerror", "bulkchunk"),
    "webhooks": ("webhookendpoint", "webhookmessage", "deliveryattempt"),
    "docqueries": ("documentquery",),
}


def create_support_group(apps, schema_editor):
    # Permissions are normally created after all migrations ran (post_migrate); create them now so the group
    # can be given them in a fresh database.
    for label in APPS:
        app_config = apps.get_app_config(label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    fill_support_group(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def fill_support_group(Group, Permission):
    """The group and its permissions (idempotent); tests re-make it after a flush emptied the database."""
    group, _ = Group.objects.get_or_create(name=SUPPORT_GROUP)
    wanted = [("patients", "view_phi"), ("webhooks", "change_webhookmessage")] + [
        (label, f"view_{model}") for label, models in MODELS.items() for model in models
    ]
    permissions = []
    for app_label, codename in wanted:
        permissions.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    group.permissions.add(*permissions)
    return group


def delete_support_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=SUPPORT_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("patients", "0001_initial"),
        ("bulkimport", "0001_initial"),
        ("webhooks", "0001_initial"),
        ("docqueries", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_support_group, delete_support_group)]
