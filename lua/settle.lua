-- Applies a booking's final status in Redis, once: a declined booking gives its tickets back.
-- KEYS and ARGV are documented on the Rust wrapper, booking/src/scripts/settle.rs.
-- Returns {DONE} when applied, {KNOWN} when the booking was already final (a redelivery: nothing
-- changes), {UNKNOWN} when Redis holds no record of the booking (it lost it; recovery counted it
-- from Postgres), {RECOVERING} when the shard is recovering (nothing changes; apply it again once
-- the shard is back); the codes and the F_* fields are defined by the wrapper's prelude
-- (booking::scripts::Reply).

local epoch_key, booking_key, stock_key, pending_key, held_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
-- The quantity goes back to Redis as the string it came in: a Lua number would be printed again.
local status, reason, quantity = ARGV[1], ARGV[2], ARGV[3]
local stock_channel, stock_message = ARGV[4], ARGV[5]
local status_channel, status_message, record_ttl = ARGV[6], ARGV[7], ARGV[8]
local customer = ARGV[9]

if redis.call('EXISTS', epoch_key) == 0 then
  return {RECOVERING}
end
local current = redis.call('HGET', booking_key, F_STATUS)
if not current then
  return {UNKNOWN}
end
if current ~= 'pending' then
  return {KNOWN}
end

if reason ~= '' then
  redis.call('HSET', booking_key, F_STATUS, status, F_REASON, reason)
else
  redis.call('HSET', booking_key, F_STATUS, status)
end
redis.call('EXPIRE', booking_key, record_ttl)

if redis.call('DECRBY', pending_key, quantity) < 0 then
  redis.call('SET', pending_key, 0)
end
if status == 'failed' then
  -- A missing stock key is loaded from Postgres, where this booking no longer counts.
  if redis.call('EXISTS', stock_key) == 1 then
    local available = redis.call('INCRBY', stock_key, quantity)
    redis.call('PUBLISH', stock_channel, stock_message .. available)
  end
  if redis.call('HINCRBY', held_key, customer, -tonumber(quantity)) <= 0 then
    redis.call('HDEL', held_key, customer)
  end
end
redis.call('PUBLISH', status_channel, status_message)
return {DONE}
