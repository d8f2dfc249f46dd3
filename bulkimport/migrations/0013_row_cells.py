import django.db.models.deletion
from django.db import migrations, models

# The same statements on PostgreSQL and SQLite: the JSON values move as they are stored.
_MOVE_CELLS = """
INSERT INTO bulkimport_bulkrowcells (row_id, raw, normalized)
SELECT id, raw, normalized FROM bulkimport_bulkrow
"""
_MOVE_CELLS_BACK = """
UPDATE bulkimport_bulkrow SET raw = c.raw, normalized = c.normalized
FROM bulkimport_bulkrowcells AS c WHERE c.row_id = bulkimport_bulkrow.id
"""


class Migration(migrations.Migration):
    """A row's cells and normalized demographics move to a table of their own (BulkRowCells), so applying a
    row writes a new version of its narrow outcome row, not of its cells. The rows that exist keep their
    cells, both ways: `raw` is made nullable first, so that going back adds it to a table with rows, then
    fills it and makes it required again."""

    dependencies = [
        ("bulkimport", "0012_request_patient_ids"),
    ]

    operations = [
        migrations.AlterField(model_name="bulkrow", name="raw", field=models.JSONField(null=True)),
        migrations.CreateModel(
            name="BulkRowCells",
            fields=[
                (
                    "row",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="cells",
                        serialize=False,
                        to="bulkimport.bulkrow",
                    ),
                ),
                ("raw", models.JSONField()),
                ("normalized", models.JSONField(blank=True, null=True)),
            ],
        ),
        migrations.RunSQL(_MOVE_CELLS, reverse_sql=_MOVE_CELLS_BACK),
        migrations.RemoveField(model_name="bulkrow", name="normalized"),
        migrations.RemoveField(model_name="bulkrow", name="raw"),
    ]
