-- Reserves tickets for one booking, atomically: the only write on the booking path.
-- KEYS and ARGV are documented on the Rust wrapper, gateway/src/reserve.rs.
-- Returns {code, detail}:
--   {0, available}  accepted: stock taken, booking recorded and appended to the stream
--   {1, fields}     replay: the key is known with the same request; fields of the stored booking
--   {2}             the key is known with a different request
--   {3, available}  not enough stock
--   {4, held}       the customer would exceed the per-concert limit
--   {5}             the tier's stock is not loaded in Redis
-- Refused requests write nothing, so a corrected retry under the same key can still succeed.

local stock_key, idem_key, booking_key, held_key, stream_key, pending_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local fingerprint = ARGV[1]
local quantity = tonumber(ARGV[2])
local max_per_customer = tonumber(ARGV[3])
local idempotency_ttl = tonumber(ARGV[4])
local held_expires_at = tonumber(ARGV[5])
local stock_channel = ARGV[6]
local concert_id, tier_id = ARGV[7], ARGV[8]

local known = redis.call('HGET', idem_key, 'fingerprint')
if known then
  if known ~= fingerprint then
    return {2}
  end
  return {1, redis.call('HGETALL', idem_key)}
end

local available = redis.call('GET', stock_key)
if not available then
  return {5}
end
available = tonumber(available)

local held = tonumber(redis.call('GET', held_key) or '0')
if max_per_customer > 0 and held + quantity > max_per_customer then
  return {4, held}
end
if available < quantity then
  return {3, available}
end

available = redis.call('DECRBY', stock_key, quantity)
redis.call('INCRBY', pending_key, quantity)
redis.call('INCRBY', held_key, quantity)
redis.call('EXPIREAT', held_key, held_expires_at)

local record = {}
for i = 9, #ARGV do
  record[#record + 1] = ARGV[i]
end
-- The booking record lives until the settler has settled it; it then sets its expiry.
redis.call('HSET', booking_key, unpack(record))
redis.call('HSET', idem_key, 'fingerprint', fingerprint, unpack(record))
redis.call('EXPIRE', idem_key, idempotency_ttl)
redis.call('XADD', stream_key, '*', unpack(record))
redis.call('PUBLISH', stock_channel,
  cjson.encode({concertId = concert_id, ticketTierId = tier_id, availableQuantity = available}))
return {0, available}
