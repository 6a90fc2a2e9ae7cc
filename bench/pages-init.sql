-- Pages of one table kept in place (ADR 017): bench/pages.sql reads ten
-- posts by id range, bench/pages-owner.sql an owner's first ten posts;
-- bench/pages-writes.sql changes the rows they read. Run by
-- `scripts/bench --init-sql` against the throwaway cluster.
--
--   posts  200,000 rows: id, owner (2,000 owners, 100 posts each), score,
--          title (~40 chars); an index on (owner, id)

DO $$ BEGIN PERFORM setseed(0.17); END $$;

CREATE TABLE posts (
    id    int PRIMARY KEY,
    owner int NOT NULL,
    score int NOT NULL,
    title text NOT NULL
);

INSERT INTO posts
SELECT g, 1 + g % 2000, (random() * 1000)::int, left('Post ' || g || ': ' || md5(g::text), 40)
FROM generate_series(1, 200000) g;

CREATE INDEX posts_owner ON posts (owner, id);
