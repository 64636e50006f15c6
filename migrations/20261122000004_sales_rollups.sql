-- Sales rollups for the analytics dashboard: confirmed tickets and revenue per tier and UTC hour.
-- The settler adds to them in the same statement that inserts the confirmed bookings, so they
-- count exactly the confirmed rows (a redelivered entry inserts nothing and adds nothing). The
-- dashboard reads these rows, whose number grows with tiers and hours, not with bookings.

CREATE TABLE sales_hourly (
    concert_id     uuid          NOT NULL REFERENCES concerts (id) ON DELETE RESTRICT,
    ticket_tier_id uuid          NOT NULL REFERENCES ticket_tiers (id) ON DELETE RESTRICT,
    -- Start of the UTC hour the bookings were made in.
    hour           timestamptz   NOT NULL CHECK (date_trunc('hour', hour, 'UTC') = hour),
    revenue        numeric(16,2) NOT NULL CHECK (revenue >= 0),
    tickets        bigint        NOT NULL CHECK (tickets >= 0),
    PRIMARY KEY (concert_id, ticket_tier_id, hour)
);

-- Windows over all concerts scan by hour.
CREATE INDEX sales_hourly_hour_idx ON sales_hourly (hour);

-- A window's partial first and last hours are read from the bookings themselves.
CREATE INDEX bookings_confirmed_created_idx ON bookings (created_at) WHERE status = 'confirmed';

-- Bookings confirmed before this migration are rolled up once here; the settler adds the rest.
INSERT INTO sales_hourly (concert_id, ticket_tier_id, hour, revenue, tickets)
SELECT concert_id, ticket_tier_id, date_trunc('hour', created_at, 'UTC'), SUM(total_price), SUM(quantity)
FROM bookings
WHERE status = 'confirmed'
GROUP BY 1, 2, 3;
