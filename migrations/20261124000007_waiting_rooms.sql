-- A concert's waiting room: admissions per second, or NULL for a concert without one (anyone
-- may book while sales are open).

ALTER TABLE concerts ADD COLUMN admit_per_second integer
    CONSTRAINT concerts_admit_per_second_check CHECK (admit_per_second BETWEEN 1 AND 100000);
