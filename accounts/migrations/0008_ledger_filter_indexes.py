import django.contrib.postgres.indexes
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY: a long ledger keeps taking deposits while these are built.
    atomic = False

    dependencies = [
        ("accounts", "0007_ledger_memo"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="ledgerentry",
            index=models.Index(
                fields=["account", "created_by", "-id"], name="ledger_account_holder"
            ),
        ),
        AddIndexConcurrently(
            model_name="ledgerentry",
            index=models.Index(fields=["account", "kind", "-id"], name="ledger_account_kind"),
        ),
        AddIndexConcurrently(
            model_name="ledgerentry",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["memo"], name="ledger_memo_trigram", opclasses=["gin_trgm_ops"]
            ),
        ),
    ]
