-- pgbench script for `make bench`: the locked path's transaction, statement for statement as
-- Account.deposit/withdraw send it with an idempotency key (captured with
-- CaptureQueriesContext, tests/test_query_count.py pins the count): BEGIN, the per-transaction
-- timeouts, the row lock, the holder check and the idempotency-key lookups (ledger and approval
-- requests) on the locked row in one SELECT, the account's new head and the entry in one statement, COMMIT. The app computes
-- the new balance and the hash in Python from the locked row; here PostgreSQL does (the hash
-- does not form a valid chain, which a throwaway benchmark database does not need).
-- The idempotency key: a UUID from md5 of random, client and transaction start (now() is
-- fixed within a transaction), so the lookup and the INSERT use the same one.
-- Variables: first/last (the account id range), uid (the holder and the ledger's created_by).
\set d random(1, 999)
\set s random(0, 1)
\set aid random(:first, :last)
\set r random(1, 2000000000)
BEGIN;
SELECT set_config('lock_timeout', '3s', true), set_config('statement_timeout', '10s', true);
SELECT id, name, balance, held, approval_threshold, daily_limit, version, last_seq, last_hash, created_at, closed_at FROM accounts_account WHERE id IN (:aid) ORDER BY id ASC FOR NO KEY UPDATE;
SELECT EXISTS (SELECT 1 FROM accounts_membership WHERE account_id = :aid AND user_id = :uid AND left_at IS NULL), (SELECT id FROM accounts_ledgerentry WHERE account_id = :aid AND idempotency_key = md5(:r || '-' || :client_id || '-' || now())::uuid), (SELECT id FROM accounts_approvalrequest WHERE account_id = :aid AND idempotency_key = md5(:r || '-' || :client_id || '-' || now())::uuid);
WITH head AS (UPDATE accounts_account SET balance = balance + (2 * :s - 1) * :d / 100.0, version = version + 1, last_seq = last_seq + 1, last_hash = encode(sha256(convert_to(last_hash || :d, 'UTF8')), 'hex') WHERE id = :aid RETURNING balance, version, last_seq, last_hash) INSERT INTO accounts_ledgerentry (account_id, seq, kind, amount, balance_after, created_by_id, created_at, idempotency_key, counterparty_id, pair_id, approved_by_id, version, hash) SELECT :aid, last_seq, CASE WHEN :s = 1 THEN 'deposit' ELSE 'withdrawal' END, :d / 100.0, balance, :uid, now(), md5(:r || '-' || :client_id || '-' || now())::uuid, NULL, NULL, NULL, version, last_hash FROM head RETURNING id;
COMMIT;
