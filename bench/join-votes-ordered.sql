-- News schema (bench/news-init.sql): an article with its votes in vote
-- order, a two-table inner equi-join returning one row per vote (20-60 for
-- the hot ids), zipfian article ids. Unlike bench/join-votes.sql its order
-- is the statement's, not the plan's, so its entries are kept in place.
\set id random_zipfian(1, 200000, 1.1)
SELECT a.id, a.title, v.user_id, v.value FROM articles a JOIN votes v ON v.article_id = a.id WHERE a.id = :id ORDER BY v.id;
