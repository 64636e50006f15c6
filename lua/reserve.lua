-- Reserves tickets for one booking, atomically: the only write on the booking path. The settler
-- runs it too, to accept again a booking Redis lost while the settler held it.
-- KEYS and ARGV are documented on the Rust wrapper, booking/src/scripts/reserve.rs.
-- Returns {code, detail}:
--   {0, available}  accepted: stock taken, booking recorded and appended to the stream
--   {1, bookingId}  the key is known with the same request: the booking it made
--   {2}             the key is known with a different request
--   {3, available}  not enough stock
--   {4, held}       the customer would exceed the per-concert limit
--   {5}             the tier's stock is not loaded in Redis
--   {6}             the shard is recovering from a loss of Redis data
--   {7}             the waiting-room admission was already spent on another booking
-- Refused requests write nothing, so a corrected retry under the same key can still succeed.

local epoch_key, stock_key, idem_key, booking_key, held_key, stream_key, pending_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local spent_key, outstanding_key = KEYS[8], KEYS[9]
local booking_id, fingerprint, packed = ARGV[1], ARGV[2], ARGV[3]
local quantity, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local idempotency_ttl, held_until = ARGV[6], ARGV[7]
local stock_channel, stock_message = ARGV[8], ARGV[9]
local admission = ARGV[10]

local epoch = redis.call('GET', epoch_key)
if not epoch then
  return {6}
end

-- The record is "<36-character booking id> <fingerprint>".
local known = redis.call('GET', idem_key)
if known then
  if string.sub(known, 38) ~= fingerprint then
    return {2}
  end
  return {1, string.sub(known, 1, 36)}
end

local available = redis.call('GET', stock_key)
if not available then
  return {5}
end
available = tonumber(available)

local held = tonumber(redis.call('GET', held_key) or '0')
if limit > 0 and held + quantity > limit then
  return {4, held}
end
if available < quantity then
  return {3, available}
end
if admission ~= '' and redis.call('HEXISTS', spent_key, admission) == 1 then
  return {7}
end

available = redis.call('DECRBY', stock_key, quantity)
redis.call('INCRBY', pending_key, quantity)
if redis.call('INCRBY', held_key, quantity) == quantity then
  redis.call('EXPIREAT', held_key, held_until)
end
-- The booking record lives until the settler has settled it; it then sets its expiry.
redis.call('HSET', booking_key, 'b', packed, 's', 'pending')
redis.call('SET', idem_key, booking_id .. ' ' .. fingerprint, 'EX', idempotency_ttl)
redis.call('XADD', stream_key, '*', 'b', packed, 'e', epoch)
if admission ~= '' then
  -- Spent: it books once, and its place no longer counts as waiting to be used.
  redis.call('HSET', spent_key, admission, booking_id)
  redis.call('EXPIREAT', spent_key, held_until)
  redis.call('ZREM', outstanding_key, admission)
end
redis.call('PUBLISH', stock_channel, stock_message .. available)
return {0, available}
