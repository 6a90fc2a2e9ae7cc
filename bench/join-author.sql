-- News schema (bench/news-init.sql): an article with its author's name, a
-- two-table inner equi-join returning one row, zipfian article ids.
\set id random_zipfian(1, 200000, 1.1)
SELECT a.id, a.title, u.name FROM articles a JOIN users u ON u.id = a.author_id WHERE a.id = :id;
