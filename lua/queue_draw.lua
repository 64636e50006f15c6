-- Gives the early joiners their places, in the order the gateway drew (ARGV), once.
-- KEYS and ARGV are documented on the Rust wrapper, booking/src/scripts/queue.rs.
-- Returns {DONE} when drawn now, {KNOWN} when the draw had already been made, {TOO_EARLY} when
-- sales are not open yet by Redis' clock, {CHANGED} when the early list is not the one drawn (read
-- it again); the codes are defined by the wrapper's prelude (booking::scripts::Reply).

local early_key, places_key, place_of_key, clock_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local opens_at, keep_until = tonumber(ARGV[1]), ARGV[2]

if redis.call('HGET', clock_key, 'drawn') then
  return {KNOWN}
end
local time = redis.call('TIME')
if tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) < opens_at then
  return {TOO_EARLY}
end
local drawn = #ARGV - 2
if redis.call('LLEN', early_key) ~= drawn then
  return {CHANGED}
end
for place = 1, drawn do
  local ticket = ARGV[place + 2]
  redis.call('HSET', places_key, place, ticket)
  redis.call('HSET', place_of_key, ticket, place)
end
redis.call('DEL', early_key)
redis.call('HSET', clock_key, 'drawn', '1')
for _, key in ipairs({places_key, place_of_key, clock_key}) do
  redis.call('EXPIREAT', key, keep_until)
end
return {DONE}
