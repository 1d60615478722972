"""Seal the personal values of existing audit events in the vault, keeping the chain verifiable
(audit.reseal). It uses the app's current models; on a table that lacks their `personal` column (added
by 0006) it does nothing, and 0007 reseals everything once the column is there."""

from django.db import migrations

from audit.reseal import audit_chain_reseal


def forwards(apps, schema_editor):
    audit_chain_reseal()


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_vault")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
