-- Writer for bench/pages.sql and bench/pages-owner.sql, run on the origin
-- by `scripts/bench --writer`, one statement each:
--   70%  a new score for a post the range reads most (zipfian id)
--   20%  a new title for a post of an owner read most (zipfian owner)
--   10%  a post moves to another owner
\set r random(1, 100)
\if :r <= 70
\set id random_zipfian(1, 200000, 1.1)
UPDATE posts SET score = score + 1 WHERE id = :id;
\elif :r <= 90
\set o random_zipfian(1, 2000, 1.1)
\set n random(0, 9)
\set e random(1, 1000000000)
UPDATE posts SET title = left('Post: ' || md5(:e::text), 40) WHERE id = (:o - 1) + 2000 * :n;
\else
\set id random(1, 200000)
\set o random(1, 2000)
UPDATE posts SET owner = :o WHERE id = :id;
\endif
