-- News schema (bench/news-init.sql): an article with its votes, a two-table
-- inner equi-join returning one row per vote (20-60 for the hot ids),
-- zipfian article ids.
\set id random_zipfian(1, 200000, 1.1)
SELECT a.id, a.title, v.user_id, v.value FROM articles a JOIN votes v ON v.article_id = a.id WHERE a.id = :id;
