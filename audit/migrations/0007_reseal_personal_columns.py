"""Seal who acted and on whom (members' and phones' names, addresses, clients; e-mail addresses in
labels and changes) in the existing audit events, keeping the chain verifiable (audit.reseal)."""

from django.db import migrations

from audit.reseal import audit_chain_reseal


def forwards(apps, schema_editor):
    audit_chain_reseal()


class Migration(migrations.Migration):
    dependencies = [("audit", "0006_personal_columns")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
