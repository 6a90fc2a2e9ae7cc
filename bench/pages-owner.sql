-- Posts (bench/pages-init.sql): an owner's first ten posts, zipfian owner;
-- plain columns in key order anchored on `owner = $1`, so pgcache keeps it
-- in place (ADR 017).
\set o random_zipfian(1, 2000, 1.1)
SELECT id, score, title FROM posts WHERE owner = :o ORDER BY id LIMIT 10;
