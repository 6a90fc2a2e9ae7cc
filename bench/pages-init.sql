-- Pages of one table read by range, kept in place (ADR 017): bench/pages.sql
-- reads, bench/pages-writes.sql changes the rows it reads. Run by
-- `scripts/bench --init-sql` against the throwaway cluster.
--
--   posts  200,000 rows: id, score, title (~40 chars)

DO $$ BEGIN PERFORM setseed(0.17); END $$;

CREATE TABLE posts (
    id    int PRIMARY KEY,
    score int NOT NULL,
    title text NOT NULL
);

INSERT INTO posts
SELECT g, (random() * 1000)::int, left('Post ' || g || ': ' || md5(g::text), 40)
FROM generate_series(1, 200000) g;
