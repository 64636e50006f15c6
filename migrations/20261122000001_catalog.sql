-- The catalog: concerts and the ticket tiers they sell. The gateway keeps it in memory and
-- reloads it from here; stock itself lives in Redis and is derived from these totals.

CREATE TABLE concerts (
    id          uuid PRIMARY KEY,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text        NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    location    text        NOT NULL CHECK (length(location) BETWEEN 1 AND 200),
    date        timestamptz NOT NULL,
    -- Logical Redis shard holding this concert's keys; fixed at creation so that changing the
    -- shard count never moves live stock.
    shard       smallint    NOT NULL CHECK (shard BETWEEN 0 AND 255),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The catalog is listed by date.
CREATE INDEX concerts_date_idx ON concerts (date);

CREATE TABLE ticket_tiers (
    id             uuid PRIMARY KEY,
    concert_id     uuid          NOT NULL REFERENCES concerts (id) ON DELETE RESTRICT,
    name           text          NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- Exact money: two places, never a float.
    price          numeric(12,2) NOT NULL CHECK (price >= 0),
    total_quantity integer       NOT NULL CHECK (total_quantity > 0),
    created_at     timestamptz   NOT NULL DEFAULT now(),
    -- A concert does not sell two tiers under one name; also serves lookups by concert.
    UNIQUE (concert_id, name)
);
