-- Optional second --init-sql for the news schema (bench/news-init.sql):
-- votes logs its whole old row on UPDATE and DELETE, so the change stream
-- says which article a deleted vote belonged to and entries reading votes
-- by article_id survive deletes of other articles' votes.
ALTER TABLE votes REPLICA IDENTITY FULL;
