-- One admission tick of a concert's waiting room, by the gateway holding (or taking) its lease.
-- KEYS and ARGV are documented on the Rust wrapper, booking/src/scripts/queue.rs.
-- Returns {code, ...}, the codes defined by the wrapper's prelude (booking::scripts::Reply):
--   {DONE, admittedUpTo, admittedNow, expired, joined, state}  state: 'open', 'paused' (no
--                 stock left, but unsettled bookings may give some back) or 'soldout'
--   {NOT_HOLDER}  another gateway holds the lease
--   {NOT_DRAWN}   early joiners wait to be drawn: their arrival numbers are not places yet, so
--                 admitting past them would skip them
--   {RECOVERING}  the shard is recovering from a loss of Redis data

local epoch_key, lease_key, clock_key, admitted_key, seq_key, places_key, outstanding_key,
  expiry_key, early_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8],
  KEYS[9]
local owner, rate, token_ms, lease_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local tiers, keep_until, channel, concert_id = tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
-- At most this much time is made up after no gateway admitted (all of them away).
local catch_up_ms = 5000

if not redis.call('GET', epoch_key) then
  return {RECOVERING}
end
local holder = redis.call('GET', lease_key)
if holder and holder ~= owner then
  return {NOT_HOLDER}
end
redis.call('SET', lease_key, owner, 'PX', lease_ms)
if redis.call('LLEN', early_key) > 0 then
  return {NOT_DRAWN}
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local last = tonumber(redis.call('HGET', clock_key, 'last') or now)
local carry = tonumber(redis.call('HGET', clock_key, 'carry') or '0')

-- Admitted people whose token expired unspent free their places for as many others.
local expired = redis.call('ZCOUNT', outstanding_key, '-inf', now)
if expired > 0 then
  redis.call('ZREMRANGEBYSCORE', outstanding_key, '-inf', now)
end
local allowance = math.min(now - last, catch_up_ms) * rate / 1000 + carry
local count = math.floor(allowance)
carry = allowance - count
count = count + expired

local stock, pending = 0, 0
for tier = 1, tiers do
  stock = stock + tonumber(redis.call('GET', KEYS[9 + tier]) or '0')
  pending = pending + tonumber(redis.call('GET', KEYS[9 + tiers + tier]) or '0')
end
local state = 'open'
if stock <= 0 then
  -- Paused while unsettled bookings may still give tickets back; sold out once none can.
  count, carry = 0, 0
  state = 'paused'
  if pending <= 0 then
    state = 'soldout'
  end
end

local admitted = tonumber(redis.call('GET', admitted_key) or '0')
local joined = tonumber(redis.call('GET', seq_key) or '0')
if count >= joined - admitted then
  -- Nobody left to admit: an empty room saves up no admissions for later.
  count, carry = joined - admitted, 0
end
local expires_at = now + token_ms
for place = admitted + 1, admitted + count do
  local ticket = redis.call('HGET', places_key, place)
  if ticket then
    redis.call('HSET', expiry_key, ticket, expires_at)
    redis.call('ZADD', outstanding_key, expires_at, ticket)
  end
end
admitted = admitted + count
redis.call('SET', admitted_key, admitted)
redis.call('HSET', clock_key, 'last', now, 'carry', carry, 'state', state)
for _, key in ipairs({admitted_key, clock_key, expiry_key, outstanding_key}) do
  redis.call('EXPIREAT', key, keep_until)
end
redis.call('PUBLISH', channel, concert_id .. ' ' .. admitted .. ' ' .. state)
return {DONE, admitted, count, expired, joined, state}
