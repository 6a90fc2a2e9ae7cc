-- Posts (bench/pages-init.sql): a page of ten posts by id range, zipfian
-- start; plain columns in key order, so pgcache keeps it in place (ADR 017).
\set a random_zipfian(1, 199990, 1.1)
\set b :a + 9
SELECT id, score, title FROM posts WHERE id BETWEEN :a AND :b ORDER BY id;
