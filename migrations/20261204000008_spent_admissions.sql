-- The waiting-room admission a booking spent, if its concert has a waiting room: Redis forgets
-- spent admissions with the rest of its data, and a shard's recovery takes them from here, so an
-- admission books once whatever Redis lost.

ALTER TABLE bookings ADD COLUMN admission_ticket_id uuid;
