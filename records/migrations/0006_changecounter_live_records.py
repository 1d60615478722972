"""The live-record count kept in the change counter's row (records.services keeps it up to date with
each write; what the plan's `records` limit reads instead of counting the table): added, and counted
once for the workspace the schema holds."""

from django.db import migrations, models


def live_records_count(apps, schema_editor):
    ChangeCounter = apps.get_model("records", "ChangeCounter")
    Record = apps.get_model("records", "Record")
    ChangeCounter.objects.filter(pk=1).update(live_records=Record.objects.filter(deleted_at=None).count())


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0005_collection_data_migration"),
    ]

    operations = [
        migrations.AddField(
            model_name="changecounter",
            name="live_records",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(live_records_count, migrations.RunPython.noop, elidable=True),
    ]
