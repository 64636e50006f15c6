-- Operators' API keys: each has one role, and only the SHA-256 of its secret is kept. A revoked
-- key stays, so the audit log's entries keep naming it.
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    role        text NOT NULL CHECK (role IN ('admin', 'box_office', 'scanner', 'analyst')),
    secret_hash bytea NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
