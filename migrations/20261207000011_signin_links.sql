-- Sign-in links: single-use, short-lived, and only the SHA-256 of each token is kept. The rows
-- of the last minute are also what limits how many links one email or one client address asks
-- for, on every gateway alike.
CREATE TABLE signin_links (
    token_hash   bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    -- Normalised as bookings' `user_email` is.
    email        text NOT NULL,
    -- The client address that asked.
    requested_by text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);

CREATE INDEX signin_links_by_email ON signin_links (email, created_at);
CREATE INDEX signin_links_by_address ON signin_links (requested_by, created_at);
