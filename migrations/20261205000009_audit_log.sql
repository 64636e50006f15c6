-- The audit log: every change an operator or the system makes to money, stock or access, appended
-- in the transaction of the change. Nobody updates or deletes an entry (the triggers refuse it),
-- and each entry's hash covers the previous entry's hash and its own content, so a row changed
-- or removed where the triggers were bypassed breaks the chain that `settler audit` verifies.

CREATE TABLE audit_log (
    -- The chain's order: appends are serialized by a transaction lock, so `seq` grows in commit
    -- order.
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id uuid NOT NULL UNIQUE,
    at timestamptz NOT NULL,
    -- Who: `admin_token` (the bootstrap credential), `api_key`, `customer` or `system`.
    actor_kind text NOT NULL,
    actor_id text NOT NULL,
    -- What: `concert.created`, `concert.changed`, ...
    action text NOT NULL,
    -- What it was done to: `concert:<id>`, ...
    target text NOT NULL,
    -- `json`, not `jsonb`: the text is kept as it was hashed.
    details json NOT NULL,
    prev_hash bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash bytea NOT NULL UNIQUE CHECK (octet_length(hash) = 32)
);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
