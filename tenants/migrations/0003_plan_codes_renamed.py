"""The plan catalogue's codes changed with Stripe billing (billing.plans): Team is now Starter and
Business is now Pro. Workspaces keep the plan they had under its new name."""

from django.db import migrations

RENAMED = {"team": "starter", "business": "pro"}


def forwards(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    for old, new in RENAMED.items():
        Tenant.objects.filter(plan=old).update(plan=new)


def backwards(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    for old, new in RENAMED.items():
        Tenant.objects.filter(plan=new).update(plan=old)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0002_plan_from_billing")]

    operations = [migrations.RunPython(forwards, backwards)]
