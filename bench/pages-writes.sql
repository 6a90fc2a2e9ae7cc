-- Writer for bench/pages.sql, run on the origin by `scripts/bench --writer`:
-- the rows the readers read most change (zipfian ids), one statement each.
--   80%  a new score for a post
--   20%  a new title
\set r random(1, 100)
\set id random_zipfian(1, 200000, 1.1)
\if :r <= 80
UPDATE posts SET score = score + 1 WHERE id = :id;
\else
\set e random(1, 1000000000)
UPDATE posts SET title = left('Post ' || :id::text || ': ' || md5(:e::text), 40) WHERE id = :id;
\endif
