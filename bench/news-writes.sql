-- Writer for the news schema (bench/news-init.sql), run directly against the
-- origin by `scripts/bench --writer bench/news-writes.sql --writer-rate TPS`
-- beside the read workload. One single-statement transaction each time:
--   70%  a vote for a zipfian article (the articles the readers read most)
--   10%  delete one vote of a uniformly random article
--   15%  new title for a zipfian article
--    5%  karma + 1 for a random user
\set r random(1, 100)
\if :r <= 70
\set a random_zipfian(1, 200000, 1.1)
\set u random(1, 100000)
\set v case when random(1, 5) = 1 then -1 else 1 end
INSERT INTO votes (article_id, user_id, value) VALUES (:a, :u, :v);
\elif :r <= 80
\set a random(1, 200000)
DELETE FROM votes WHERE id = (SELECT id FROM votes WHERE article_id = :a LIMIT 1);
\elif :r <= 95
\set a random_zipfian(1, 200000, 1.1)
\set e random(1, 1000000000)
UPDATE articles SET title = left('Article ' || :a::text || ': ' || md5(:e::text), 40) WHERE id = :a;
\else
\set u random(1, 100000)
UPDATE users SET karma = karma + 1 WHERE id = :u;
\endif
