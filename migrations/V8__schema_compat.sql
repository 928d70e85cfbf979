-- Which binaries may run against this schema. A binary knows the newest migration it carries; when
-- the database has a newer one (a rollback, or a rolling upgrade with old daemons still running),
-- the binary starts only if its newest migration is at least compatible_from. A migration that an
-- older binary could not run against (a column it reads dropped or renamed, a constraint it would
-- break) raises compatible_from to its own version; an additive one (a table, a view, an index, a
-- nullable column) leaves it. Binaries carrying V6 (the release before V7's billing views) run
-- against V7 and this one.
CREATE TABLE supasaasy.schema_compat (
    only_row        boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    compatible_from integer NOT NULL
);

INSERT INTO supasaasy.schema_compat (compatible_from) VALUES (6);
