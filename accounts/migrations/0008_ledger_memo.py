from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_invitation_rate_limit_indexes"),
    ]

    operations = [
        # Existing entries get "" (no memo), which chain_hash leaves out: their hashes stand.
        migrations.AddField(
            model_name="ledgerentry",
            name="memo",
            field=models.CharField(blank=True, db_default="", default="", max_length=140),
        ),
        # pg_trgm is a trusted extension: the database's owner may create it (PostgreSQL 13+).
        TrigramExtension(),
    ]
