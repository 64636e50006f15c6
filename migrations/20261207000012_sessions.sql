-- Customers who signed in, their sessions and the refresh tokens of each. A refresh token is
-- spent when it is exchanged for the next; presenting a spent one again revokes its session. Only
-- the SHA-256 of each token is kept.
CREATE TABLE customers (
    id         uuid PRIMARY KEY,
    -- Normalised as bookings' `user_email` is: the customer's bookings are those of this email.
    email      text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    customer_id     uuid NOT NULL REFERENCES customers (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    -- `signed out`, `refresh token reused`.
    revoked_because text
);

CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id uuid NOT NULL REFERENCES sessions (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    spent_at   timestamptz
);

CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- A customer's bookings, newest first, a page at a time.
CREATE INDEX bookings_email_created_idx ON bookings (user_email, created_at DESC, id DESC);
