-- Reserves tickets for one booking, atomically: the only write on the booking path. The settler
-- runs it too, to accept again a booking Redis lost while the settler held it.
-- KEYS and ARGV are documented on the Rust wrapper, booking/src/scripts/reserve.rs.
-- Returns {code, detail}, the codes (and ID_CHARS, the booking id's length in the idempotency
-- record, and F_* the booking hash's and stream entry's fields) defined by the prelude the
-- wrapper puts before this file (booking::scripts::Reply):
--   {DONE, available}      accepted: stock taken, booking recorded and appended to the stream
--   {KNOWN, bookingId}     the key is known with the same request: the booking it made
--   {KEY_REUSED}           the key is known with a different request
--   {OUT_OF_STOCK, available}  not enough stock
--   {CUSTOMER_LIMIT, held} the customer would exceed the per-concert limit
--   {STOCK_MISSING}        the tier's stock is not loaded in Redis
--   {RECOVERING}           the shard is recovering from a loss of Redis data
--   {ADMISSION_SPENT}      the waiting-room admission was already spent on another booking
-- Refused requests leave nothing changed, so a corrected retry under the same key can succeed.

local epoch_key, stock_key, idem_key, booking_key, held_key, stream_key, pending_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local spent_key, outstanding_key = KEYS[8], KEYS[9]
-- "<booking id> <fingerprint>", stored as it comes: a Lua string made here would
-- cost Redis an allocation and its garbage collection on every booking.
local idem_record, packed = ARGV[1], ARGV[2]
-- Counts go back to Redis as the strings they came in: a Lua number would be printed again.
local quantity_text, limit = ARGV[3], tonumber(ARGV[4])
local quantity = tonumber(quantity_text)
local idempotency_ttl, customer = ARGV[5], ARGV[6]
local stock_channel, stock_message = ARGV[7], ARGV[8]
local admission, keep_until = ARGV[9], ARGV[10]

-- One read for the checks that write nothing: each call out of a script costs Redis about as
-- much as a small command, and these keys share the shard's hash tag.
local read = redis.call('MGET', epoch_key, idem_key, stock_key)
local epoch, known, available = read[1], read[2], read[3]
if not epoch then
  return {RECOVERING}
end

if known then
  if string.sub(known, ID_CHARS + 2) ~= string.sub(idem_record, ID_CHARS + 2) then
    return {KEY_REUSED}
  end
  return {KNOWN, string.sub(known, 1, ID_CHARS)}
end

if not available then
  return {STOCK_MISSING}
end
available = tonumber(available)
if available < quantity then
  return {OUT_OF_STOCK, available}
end
if admission and redis.call('HEXISTS', spent_key, admission) == 1 then
  return {ADMISSION_SPENT}
end

-- The customer's count is taken, then given back if it went over the limit: one call instead
-- of a read and a write.
local held = redis.call('HINCRBY', held_key, customer, quantity_text)
if limit > 0 and held > limit then
  if held == quantity then
    redis.call('HDEL', held_key, customer)
  else
    redis.call('HINCRBY', held_key, customer, -quantity)
  end
  return {CUSTOMER_LIMIT, held - quantity}
end

available = redis.call('DECRBY', stock_key, quantity_text)
redis.call('INCRBY', pending_key, quantity_text)
-- The booking record lives until the settler has settled it; it then sets its expiry.
redis.call('HSET', booking_key, F_PACKED, packed, F_STATUS, 'pending')
redis.call('SET', idem_key, idem_record, 'EX', idempotency_ttl)
redis.call('XADD', stream_key, '*', F_PACKED, packed, F_EPOCH, epoch)
if admission then
  -- Spent: it books once, and its place no longer counts as waiting to be used.
  redis.call('HSET', spent_key, admission, string.sub(idem_record, 1, ID_CHARS))
  redis.call('EXPIREAT', spent_key, keep_until)
  redis.call('ZREM', outstanding_key, admission)
end
redis.call('PUBLISH', stock_channel, stock_message .. available)
return {DONE, available}
