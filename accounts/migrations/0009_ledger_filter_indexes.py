import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY: a long ledger keeps taking deposits while these are built.
    atomic = False

    dependencies = [
        ("accounts", "0008_ledger_memo"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="ledgerentry",
            index=models.Index(
                fields=["account", "created_by", "seq"], name="ledger_account_holder"
            ),
        ),
        AddIndexConcurrently(
            model_name="ledgerentry",
            index=models.Index(fields=["account", "kind", "seq"], name="ledger_account_kind"),
        ),
        AddIndexConcurrently(
            model_name="ledgerentry",
            # On UPPER(memo): Django's `icontains` is UPPER(memo) LIKE UPPER('%…%').
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.indexes.OpClass(
                    django.db.models.functions.text.Upper("memo"), name="gin_trgm_ops"
                ),
                name="ledger_memo_trigram",
            ),
        ),
    ]
