-- Sales windows: a concert sells from sales_open_at (default: when it was created) until
-- sales_close_at (default: its date); outside it a booking is refused with 409.

ALTER TABLE concerts ADD COLUMN sales_open_at timestamptz;
ALTER TABLE concerts ADD COLUMN sales_close_at timestamptz;
-- A concert created no earlier than its own date opened a second before it.
UPDATE concerts
SET sales_open_at = LEAST(created_at, date - interval '1 second'), sales_close_at = date;
ALTER TABLE concerts
    ALTER COLUMN sales_open_at SET NOT NULL,
    ALTER COLUMN sales_close_at SET NOT NULL,
    ADD CONSTRAINT concerts_sales_window_check
        CHECK (sales_open_at < sales_close_at AND sales_close_at <= date);
