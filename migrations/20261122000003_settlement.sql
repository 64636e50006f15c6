-- Settlement: what the settler records beside each booking row.

-- The payment provider's reference for an approved charge, so a confirmed booking can be traced
-- to its payment (refunds, disputes).
ALTER TABLE bookings ADD COLUMN payment_reference text;

-- Every status a booking has had, for audits: `pending` when the gateway accepted it, then its
-- final status when it settled. Written in the same statement as the booking row; one row per
-- booking and status, so a redelivered entry cannot add a second.
CREATE TABLE booking_status_history (
    booking_id uuid           NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    status     booking_status NOT NULL,
    reason     text,
    at         timestamptz    NOT NULL,
    PRIMARY KEY (booking_id, status)
);
