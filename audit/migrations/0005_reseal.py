"""Seal the personal values of existing audit events in the vault, keeping the chain verifiable
(audit.reseal). It uses the app's current models: audit_auditevent is unchanged since 0001."""

from django.db import migrations

from audit.reseal import audit_chain_reseal


def forwards(apps, schema_editor):
    audit_chain_reseal()


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_vault")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
