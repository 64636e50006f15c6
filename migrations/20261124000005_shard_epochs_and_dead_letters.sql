-- Surviving Redis losing its data, and entries that can never be written.

-- The epoch of each Redis shard. Recovery moves it on when Redis lost (or may have lost) the
-- shard's data; a settler commits a confirmation only while the epoch its booking was accepted in
-- is the current one, reading this row FOR SHARE in the same transaction, so a recovery waits for
-- confirmations in flight and none from before the loss lands after it.
CREATE TABLE shard_epochs (
    shard        smallint    PRIMARY KEY CHECK (shard BETWEEN 0 AND 255),
    epoch        bigint      NOT NULL CHECK (epoch > 0),
    recovered_at timestamptz NOT NULL DEFAULT now()
);

-- Bookings that were accepted but could not be written (a row Postgres refuses, an entry that
-- does not read back): each is resolved as failed once, its stock returned, and recorded here
-- once with the entry as it was, for support to follow up.
CREATE TABLE dead_letters (
    id              bigserial   PRIMARY KEY,
    -- The booking, when the entry reads back far enough to name it.
    booking_id      uuid        UNIQUE,
    shard           smallint    NOT NULL,
    epoch           bigint      NOT NULL,
    stream_entry_id text        NOT NULL,
    -- The entry's packed booking, as the stream held it.
    entry           text        NOT NULL,
    reason          text        NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (shard, epoch, stream_entry_id)
);

-- Recovery rebuilds the idempotency records of a shard's concerts from the last 24 hours.
CREATE INDEX bookings_concert_created_idx ON bookings (concert_id, created_at);
