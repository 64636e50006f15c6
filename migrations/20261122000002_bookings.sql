-- Settled bookings. The gateway accepts a booking in Redis and answers at once; the settler
-- writes the row here once payment has an outcome. One row per booking, keyed by the id the
-- gateway generated (UUIDv7, so inserts land at the right edge of the primary key index).

CREATE TYPE booking_status AS ENUM ('pending', 'confirmed', 'failed');

CREATE TABLE bookings (
    id              uuid PRIMARY KEY,
    -- The client's key for this purchase attempt; kept for support and audits.
    idempotency_key text           NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    ticket_tier_id  uuid           NOT NULL REFERENCES ticket_tiers (id) ON DELETE RESTRICT,
    concert_id      uuid           NOT NULL REFERENCES concerts (id) ON DELETE RESTRICT,
    user_email      text           NOT NULL CHECK (length(user_email) BETWEEN 3 AND 254),
    quantity        smallint       NOT NULL CHECK (quantity BETWEEN 1 AND 10),
    total_price     numeric(12,2)  NOT NULL CHECK (total_price >= 0),
    currency        char(3)        NOT NULL CHECK (currency = 'USD'),
    status          booking_status NOT NULL,
    -- Present exactly when the booking failed.
    failure_reason  text           CHECK ((status = 'failed') = (failure_reason IS NOT NULL)),
    created_at      timestamptz    NOT NULL,
    updated_at      timestamptz    NOT NULL DEFAULT now()
);

-- Stock reconciliation sums quantities per tier and status.
CREATE INDEX bookings_tier_status_idx ON bookings (ticket_tier_id, status) INCLUDE (quantity);
-- A customer's bookings for a concert (support, per-customer limit rebuilds).
CREATE INDEX bookings_concert_email_idx ON bookings (concert_id, user_email);
-- Looking a booking up by the client's key.
CREATE INDEX bookings_idempotency_key_idx ON bookings (idempotency_key);
