-- The yardstick `make bench` runs beside lua/reserve.lua with redis-benchmark: the essential work
-- of accepting a booking and nothing more. It checks no epoch, customer limit, fingerprint or
-- admission, keeps no record to read while pending, counts nothing pending.
-- KEYS: 1 idempotency key, 2 stock, 3 stream.
-- ARGV: 1 booking id, 2 tier id, 3 email, 4 idempotency key, 5 created at, 6 stock channel.

local known = redis.call('GET', KEYS[1])
if known then
  return {1, known}
end
local available = tonumber(redis.call('GET', KEYS[2]) or '0')
if available < 1 then
  return {3, available}
end
available = redis.call('DECRBY', KEYS[2], 1)
redis.call('SET', KEYS[1], ARGV[1], 'EX', 86400)
redis.call('XADD', KEYS[3], '*', 'id', ARGV[1], 'tier', ARGV[2], 'email', ARGV[3], 'quantity', '1',
  'price', '10.00', 'key', ARGV[4], 'at', ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[2] .. ' ' .. available)
return {0, available}
