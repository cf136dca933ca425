-- Access control and the tamper-evident audit log (issue 8).

-- API tokens. The secret is shown once at creation; only a random salt and
-- SHA-256(salt || secret) are stored. Owners' tokens are bound to their owner record.
CREATE TABLE api_tokens (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL CHECK (btrim(name) <> '' AND length(name) <= 200),
    role        text NOT NULL CHECK (role IN ('admin', 'registrar', 'investigator', 'analyst', 'owner')),
    owner_id    bigint REFERENCES owners (id),
    salt        bytea NOT NULL CHECK (length(salt) = 16),
    hash        bytea NOT NULL CHECK (length(hash) = 32),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    revoked_by  text,
    CHECK ((role = 'owner') = (owner_id IS NOT NULL))
);

-- Every command that reads owner data or changes anything, and every refused command.
-- Entries are hash-chained: hash = SHA-256(prev_hash || canonical text of the entry), computed
-- by the daemon under an advisory lock so that daemons sharing the database extend one chain.
CREATE TABLE audit_log (
    seq           bigint PRIMARY KEY,
    at_us         bigint NOT NULL,            -- microseconds since 1970-01-01 UTC (exact, hashed)
    identity      text NOT NULL,
    role          text NOT NULL,
    peer          text NOT NULL,
    command       text NOT NULL,              -- the request with secrets removed
    case_id       text,
    purpose       text,
    result_count  integer,
    outcome       text NOT NULL,              -- ok, or the error code
    prev_hash     bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash          bytea NOT NULL CHECK (length(hash) = 32)
);
CREATE INDEX audit_log_identity_idx ON audit_log (identity, seq);
CREATE INDEX audit_log_case_idx ON audit_log (case_id, seq) WHERE case_id IS NOT NULL;
CREATE INDEX audit_log_at_idx ON audit_log (at_us);

-- The log is append-only: the database itself refuses changes and deletions.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
