-- Applies a booking's final status in Redis, once: a declined booking gives its tickets back.
-- KEYS and ARGV are documented on the Rust wrapper, settler/src/finalize.rs.
-- Returns 1 when applied, 0 when the booking was already final (a redelivery: nothing changes),
-- -1 when Redis holds no record of the booking (it lost its data; stock is rebuilt from Postgres).

local booking_key, idem_key, stock_key, pending_key, held_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local status, reason = ARGV[1], ARGV[2]
local quantity = tonumber(ARGV[3])
local booking_id, concert_id, tier_id = ARGV[4], ARGV[5], ARGV[6]
local stock_channel, status_channel = ARGV[7], ARGV[8]
local record_ttl = tonumber(ARGV[9])

local current = redis.call('HGET', booking_key, 'status')
if not current then
  return -1
end
if current ~= 'pending' then
  return 0
end

redis.call('HSET', booking_key, 'status', status)
if reason ~= '' then
  redis.call('HSET', booking_key, 'failureReason', reason)
end
redis.call('EXPIRE', booking_key, record_ttl)
if redis.call('HGET', idem_key, 'id') == booking_id then
  redis.call('HSET', idem_key, 'status', status)
  if reason ~= '' then
    redis.call('HSET', idem_key, 'failureReason', reason)
  end
end

if redis.call('DECRBY', pending_key, quantity) < 0 then
  redis.call('SET', pending_key, 0)
end
if status == 'failed' then
  -- A missing stock key is being rebuilt from Postgres, where this booking no longer counts.
  if redis.call('EXISTS', stock_key) == 1 then
    local available = redis.call('INCRBY', stock_key, quantity)
    redis.call('PUBLISH', stock_channel,
      cjson.encode({concertId = concert_id, ticketTierId = tier_id, availableQuantity = available}))
  end
  if redis.call('DECRBY', held_key, quantity) <= 0 then
    redis.call('DEL', held_key)
  end
end
redis.call('PUBLISH', status_channel, cjson.encode({bookingId = booking_id, status = status}))
return 1
