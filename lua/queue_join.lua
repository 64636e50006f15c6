-- Joins a concert's waiting room, once per email: a second join answers the first place.
-- KEYS and ARGV are documented on the Rust wrapper, booking/src/scripts/queue.rs.
-- Returns {code, ...}, the codes (and T_*, the ticket hash's fields) defined by the wrapper's
-- prelude (booking::scripts::Reply):
--   {DONE, arrival, place, admitted, state}  joined: place is 0 for an early joiner until the
--                                     draw; state the room's ('open' before its first tick)
--   {KNOWN, ticketId}                 the email already joined: its ticket
--   {RECOVERING}                      the shard is recovering from a loss of Redis data

local epoch_key, join_key, seq_key, early_key, places_key, ticket_key, admitted_key, clock_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local ticket_id, concert_id, opens_at = ARGV[1], ARGV[2], tonumber(ARGV[3])
local keep_until, email = ARGV[4], ARGV[5]

if not redis.call('GET', epoch_key) then
  return {RECOVERING}
end
local known = redis.call('GET', join_key)
if known then
  return {KNOWN, known}
end

-- Redis' clock, not a gateway's: every gateway sorts joiners into early and late alike.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local arrival = redis.call('INCR', seq_key)
local place = 0
local early = '0'
if now < opens_at then
  -- Drawn into a random order at opening; arriving early is no advantage.
  redis.call('RPUSH', early_key, ticket_id)
  redis.call('EXPIREAT', early_key, keep_until)
  early = '1'
else
  -- Every early joiner arrived before every late one, so arrivals after opening are places.
  place = arrival
  redis.call('HSET', places_key, arrival, ticket_id)
  redis.call('EXPIREAT', places_key, keep_until)
end
redis.call('EXPIREAT', seq_key, keep_until)
redis.call('HSET', ticket_key, T_CONCERT, concert_id, T_ARRIVAL, arrival, T_EARLY, early,
  T_EMAIL, email)
redis.call('EXPIREAT', ticket_key, keep_until)
redis.call('SET', join_key, ticket_id, 'EXAT', keep_until)
return {DONE, arrival, place, tonumber(redis.call('GET', admitted_key) or '0'),
  redis.call('HGET', clock_key, 'state') or 'open'}
