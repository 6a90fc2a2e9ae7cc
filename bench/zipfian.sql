-- pgbench select-only statement, zipfian keys over all accounts of scale 10.
\set aid random_zipfian(1, 1000000, 1.1)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
