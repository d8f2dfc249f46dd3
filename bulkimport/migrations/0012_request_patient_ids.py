from django.db import migrations, models


class Migration(migrations.Migration):
    """BulkRequest.patient_ids: the requests that exist keep the uuid5 ids their rows' patients have (1); new
    requests derive ordered ids (2)."""

    dependencies = [
        ("bulkimport", "0011_parse_segments"),
    ]

    operations = [
        migrations.AddField(
            model_name="bulkrequest",
            name="patient_ids",
            field=models.PositiveSmallIntegerField(default=1),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="bulkrequest",
            name="patient_ids",
            field=models.PositiveSmallIntegerField(default=2),
        ),
    ]
