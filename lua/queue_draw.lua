-- Gives the early joiners their places, in the order the gateway drew (ARGV). Each draw places the
-- joiners who came before an opening; moving the opening later makes the joiners before the new
-- one early again, and they are drawn at it, so nobody who joined is left without a place.
-- KEYS and ARGV are documented on the Rust wrapper, booking/src/scripts/queue.rs.
-- Returns {DONE} when drawn now, {KNOWN} when nobody waits to be drawn, {TOO_EARLY} when sales
-- are not open yet by Redis' clock, {CHANGED} when the early list is not the one drawn (read it
-- again); the codes are defined by the wrapper's prelude (booking::scripts::Reply).

local early_key, places_key, place_of_key = KEYS[1], KEYS[2], KEYS[3]
local opens_at, keep_until, listed = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])

local waiting = redis.call('LLEN', early_key)
if waiting == 0 then
  return {KNOWN}
end
local time = redis.call('TIME')
if tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) < opens_at then
  return {TOO_EARLY}
end
if waiting ~= listed then
  return {CHANGED}
end
-- Pairs of place and ticket: the joiners' own arrival numbers, shuffled among them, so a draw
-- takes no place of anyone who joined after an opening.
for i = 4, #ARGV, 2 do
  redis.call('HSET', places_key, ARGV[i], ARGV[i + 1])
  redis.call('HSET', place_of_key, ARGV[i + 1], ARGV[i])
end
redis.call('DEL', early_key)
for _, key in ipairs({places_key, place_of_key}) do
  redis.call('EXPIREAT', key, keep_until)
end
return {DONE}
