import django.db.models.deletion
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models

from accounts.contributions import TOTALS_FROM_LEDGER

# Every ledger insert adds its amount to its (account, user, UTC month) row, in the same
# transaction. Kinds: money in, money out, interest; a kind not listed here adds nothing.
ADD_TO_CONTRIBUTIONS = """
CREATE FUNCTION accounts_ledger_add_to_contributions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accounts_monthlycontribution
        (account_id, holder_id, month, paid_in, taken_out, interest)
    VALUES (
        NEW.account_id,
        NEW.created_by_id,
        date_trunc('month', NEW.created_at AT TIME ZONE 'UTC')::date,
        CASE WHEN NEW.kind IN ('deposit', 'transfer_in') THEN NEW.amount ELSE 0 END,
        CASE WHEN NEW.kind IN ('withdrawal', 'transfer_out') THEN NEW.amount ELSE 0 END,
        CASE WHEN NEW.kind = 'interest' THEN NEW.amount ELSE 0 END
    )
    ON CONFLICT (account_id, holder_id, month) DO UPDATE SET
        paid_in = accounts_monthlycontribution.paid_in + EXCLUDED.paid_in,
        taken_out = accounts_monthlycontribution.taken_out + EXCLUDED.taken_out,
        interest = accounts_monthlycontribution.interest + EXCLUDED.interest;
    RETURN NULL;
END;
$$;
CREATE TRIGGER ledger_contributions
    AFTER INSERT ON accounts_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION accounts_ledger_add_to_contributions();
"""
# The entries written before the trigger existed. The lock makes writers wait until this
# migration commits: an entry inserted between the backfill's snapshot and the trigger's
# creation would otherwise be counted by neither.
BACKFILL = (
    "LOCK TABLE accounts_ledgerentry IN SHARE ROW EXCLUSIVE MODE;"
    + TOTALS_FROM_LEDGER.format(where="")
    + ";"
)
DROP = """
DROP TRIGGER ledger_contributions ON accounts_ledgerentry;
DROP FUNCTION accounts_ledger_add_to_contributions();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0007_ledger_filter_indexes'),
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
