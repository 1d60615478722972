"""The chain head only moves forward: no one can cut the log's tail and rewind the head to hide it."""

from django.db import migrations

PG_UP = """
CREATE OR REPLACE FUNCTION audit_chain_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR NEW.seq < OLD.seq THEN
    RAISE EXCEPTION 'the audit chain head only moves forward';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER audit_chain_head_forward_only BEFORE UPDATE OR DELETE ON audit_auditchainhead
FOR EACH ROW EXECUTE FUNCTION audit_chain_head_forward_only();
"""
PG_DOWN = "DROP TRIGGER IF EXISTS audit_chain_head_forward_only ON audit_auditchainhead;"
SQLITE_UP = [
    "CREATE TRIGGER audit_chain_head_no_rewind BEFORE UPDATE ON audit_auditchainhead WHEN NEW.seq < OLD.seq "
    "BEGIN SELECT RAISE(ABORT, 'the audit chain head only moves forward'); END;",
    "CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_auditchainhead "
    "BEGIN SELECT RAISE(ABORT, 'the audit chain head only moves forward'); END;",
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS audit_chain_head_no_rewind;", "DROP TRIGGER IF EXISTS audit_chain_head_no_delete;"]


def up(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_UP)
    else:
        for sql in SQLITE_UP:
            schema_editor.execute(sql)


def down(apps, schema_editor):
    for sql in [PG_DOWN] if schema_editor.connection.vendor == "postgresql" else SQLITE_DOWN:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only")]
    operations = [migrations.RunPython(up, down)]
