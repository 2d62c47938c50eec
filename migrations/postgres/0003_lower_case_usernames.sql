-- Usernames are stored lower-cased, which is what makes the UNIQUE constraint
-- case-insensitive. Until now only the application enforced it; the database now refuses
-- anything else too, so no other writer (a script, a future code path) can add `Bob` beside
-- `bob`. Usernames are ASCII (`[A-Za-z0-9_.-]`), so lower() is the exact rule.
ALTER TABLE users ADD CONSTRAINT users_username_lower CHECK (username = lower(username));
