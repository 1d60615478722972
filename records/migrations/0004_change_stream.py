# A workspace's change stream name makes its event ids unique across workspaces (records.models).

from django.db import migrations, models

import records.models


def streams_new(apps, schema_editor):
    """Each existing counter (one per workspace) its own stream, not the one default AddField used."""
    ChangeCounter = apps.get_model("records", "ChangeCounter")
    for counter in ChangeCounter.objects.all():
        counter.stream = records.models.change_stream_new()
        counter.save(update_fields=["stream"])


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0003_record_id_per_mode"),
    ]

    operations = [
        migrations.AddField(
            model_name="changecounter",
            name="stream",
            field=models.CharField(default=records.models.change_stream_new, max_length=16),
        ),
        migrations.RunPython(streams_new, migrations.RunPython.noop),
    ]
