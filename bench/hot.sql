-- pgbench select-only statement over a hot key set (10,000 of the accounts).
\set aid random(1, 10000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
