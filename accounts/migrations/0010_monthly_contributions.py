import django.db.models.deletion
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models

from accounts.contributions import TOTALS_FROM_LEDGER

# Every INSERT into the ledger adds its rows' amounts to their (account, user, UTC month) rows,
# in the same transaction. Once per statement, from the statement's new rows: a bulk load of a
# million entries is one grouped upsert, not a million updates of the same few rows. Kinds:
# money in, money out, interest; a kind not listed adds nothing.
ADD_TO_CONTRIBUTIONS = f"""
CREATE FUNCTION accounts_ledger_add_to_contributions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {TOTALS_FROM_LEDGER.format(entries="new_entries", where="")}
    ON CONFLICT (account_id, holder_id, month) DO UPDATE SET
        paid_in = accounts_monthlycontribution.paid_in + EXCLUDED.paid_in,
        taken_out = accounts_monthlycontribution.taken_out + EXCLUDED.taken_out,
        interest = accounts_monthlycontribution.interest + EXCLUDED.interest;
    RETURN NULL;
END;
$$;
CREATE TRIGGER ledger_contributions
    AFTER INSERT ON accounts_ledgerentry
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_ledger_add_to_contributions();
"""
# The entries written before the trigger existed. The lock makes writers wait until this
# migration commits: an entry inserted between the backfill's snapshot and the trigger's
# creation would otherwise be counted by neither.
BACKFILL = (
    "LOCK TABLE accounts_ledgerentry IN SHARE ROW EXCLUSIVE MODE;"
    + TOTALS_FROM_LEDGER.format(entries="accounts_ledgerentry", where="")
    + ";"
)
DROP = """
DROP TRIGGER ledger_contributions ON accounts_ledgerentry;
DROP FUNCTION accounts_ledger_add_to_contributions();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0009_ledger_filter_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='MonthlyContribution',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('month', models.DateField(help_text='the first day of the month, UTC')),
                ('paid_in', models.DecimalField(decimal_places=2, default=Decimal('0.00'), max_digits=20)),
                ('taken_out', models.DecimalField(decimal_places=2, default=Decimal('0.00'), max_digits=20)),
                ('interest', models.DecimalField(decimal_places=2, default=Decimal('0.00'), max_digits=20)),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='contributions', to='accounts.account')),
                ('holder', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('account', 'holder', 'month'), name='one_contribution_row_per_month')],
            },
        ),
        migrations.RunSQL(BACKFILL + ADD_TO_CONTRIBUTIONS, DROP),
    ]
