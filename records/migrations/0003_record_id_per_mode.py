"""Record ids unique per livemode: a test key can reuse a live id (and so cannot learn that it exists).

The primary key moves from `id` to `key` (records.models.record_key: the id in live mode,
`test:<id>` in test mode), `id` stays the public id, unique together with `livemode`. Live rows keep
key == id, so RecordUniqueValue rows pointing at live records keep their value; those of test records
are rewritten. Django cannot move a primary key in place, so the database side is written out per
vendor: PostgreSQL alters the table (keeping sort and trigram indexes made outside the models);
SQLite rebuilds both tables from the new models and re-creates indexes made outside the models.
"""

from django.db import migrations, models

import records.models


def _postgresql(apps, schema_editor):
    Record = apps.get_model("records", "Record")
    UniqueValue = apps.get_model("records", "RecordUniqueValue")
    record_table, uv_table = Record._meta.db_table, UniqueValue._meta.db_table
    q = schema_editor.quote_name
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint "
            "WHERE confrelid = %s::regclass AND contype = 'f'",
            [record_table],
        )
        for table, name in cursor.fetchall():
            schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {q(name)}")
        cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", [record_table])
        (pk_name,) = cursor.fetchone()
    schema_editor.execute(f'ALTER TABLE {q(record_table)} ADD COLUMN "key" varchar(72) NULL')
    schema_editor.execute(
        f"UPDATE {q(record_table)} SET \"key\" = CASE WHEN livemode THEN id ELSE 'test:' || id END"
    )
    schema_editor.execute(f"ALTER TABLE {q(uv_table)} ALTER COLUMN record_id TYPE varchar(72)")
    schema_editor.execute(
        f"UPDATE {q(uv_table)} u SET record_id = 'test:' || u.record_id "
        f"FROM {q(record_table)} r WHERE r.id = u.record_id AND NOT r.livemode"
    )
    schema_editor.execute(f"ALTER TABLE {q(record_table)} DROP CONSTRAINT {q(pk_name)}")
    like_id = schema_editor._create_index_name(record_table, ["id"], suffix="_like")
    schema_editor.execute(f"DROP INDEX IF EXISTS {q(like_id)}")
    schema_editor.execute(f'ALTER TABLE {q(record_table)} ALTER COLUMN "key" SET NOT NULL')
    schema_editor.execute(f'ALTER TABLE {q(record_table)} ADD CONSTRAINT {q(pk_name)} PRIMARY KEY ("key")')
    schema_editor.execute(schema_editor._create_like_index_sql(Record, Record._meta.get_field("key")))
    schema_editor.execute(
        schema_editor._create_fk_sql(UniqueValue, UniqueValue._meta.get_field("record"), "_fk_%(to_table)s_%(to_column)s")
    )
    for constraint in Record._meta.constraints:
        schema_editor.add_constraint(Record, constraint)


def _sqlite(apps, schema_editor):
    Record = apps.get_model("records", "Record")
    UniqueValue = apps.get_model("records", "RecordUniqueValue")
    record_table, uv_table = Record._meta.db_table, UniqueValue._meta.db_table
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL",
            [record_table],
        )
        indexes_before = cursor.fetchall()
    schema_editor.execute(f'ALTER TABLE "{record_table}" ADD COLUMN "key" varchar(72) NULL')
    schema_editor.execute(f"UPDATE \"{record_table}\" SET \"key\" = CASE WHEN livemode THEN id ELSE 'test:' || id END")
    schema_editor.execute(
        f"UPDATE \"{uv_table}\" SET record_id = 'test:' || record_id "
        f'WHERE record_id IN (SELECT id FROM "{record_table}" WHERE NOT livemode)'
    )
    schema_editor._remake_table(Record)
    schema_editor._remake_table(UniqueValue)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = %s", [record_table])
        now = {name for (name,) in cursor.fetchall()}
    for name, sql in indexes_before:  # indexes made outside the models (none today; keep any that exist)
        if name not in now:
            schema_editor.execute(sql)


def primary_key_move(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _postgresql(apps, schema_editor)
    elif vendor == "sqlite":
        _sqlite(apps, schema_editor)
    else:
        raise NotImplementedError(f"records.0003 knows PostgreSQL and SQLite, not {vendor}")


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0002_console_table_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="record",
                    name="key",
                    field=models.CharField(
                        default=None,
                        editable=False,
                        help_text="See record_key().",
                        max_length=72,
                        primary_key=True,
                        serialize=False,
                    ),
                    preserve_default=False,
                ),
                migrations.AlterField(
                    model_name="record",
                    name="id",
                    field=models.CharField(
                        default=records.models.record_id_new,
                        editable=False,
                        help_text="Unique per livemode.",
                        max_length=64,
                    ),
                ),
                migrations.AddConstraint(
                    model_name="record",
                    constraint=models.UniqueConstraint(fields=("livemode", "id"), name="records_record_id_per_mode"),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(primary_key_move, elidable=False),
    ]
