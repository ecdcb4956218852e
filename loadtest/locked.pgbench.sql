-- pgbench script for `make bench`: the locked path's transaction, statement for statement as
-- Account.deposit/withdraw send it (captured with CaptureQueriesContext): BEGIN, the row lock,
-- the holder check under the lock, UPDATE, INSERT, COMMIT.
-- Variables: first/last (the account id range), uid (the holder and the ledger's created_by).
\set d random(1, 999)
\set s random(0, 1)
\set aid random(:first, :last)
BEGIN;
SELECT id, name, balance, version, created_at, closed_at FROM accounts_account WHERE id = :aid LIMIT 21 FOR NO KEY UPDATE;
SELECT 1 AS a FROM accounts_membership WHERE account_id = :aid AND left_at IS NULL AND user_id = :uid LIMIT 1;
UPDATE accounts_account SET balance = balance + (2 * :s - 1) * :d / 100.0, version = version + 1 WHERE id = :aid RETURNING balance AS new_balance \gset
INSERT INTO accounts_ledgerentry (account_id, kind, amount, balance_after, created_by_id, created_at) VALUES (:aid, CASE WHEN :s = 1 THEN 'deposit' ELSE 'withdrawal' END, :d / 100.0, :new_balance, :uid, now()) RETURNING id;
COMMIT;
