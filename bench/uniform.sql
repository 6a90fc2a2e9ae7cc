-- pgbench select-only statement, uniform keys over all accounts: in a short
-- run almost every key is read once, so through pgcache these are misses
-- (scale 10: 1,000,000 accounts).
\set aid random(1, 1000000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
