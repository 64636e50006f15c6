-- Trims a stream behind its oldest unacknowledged entry and reports its depth.
-- KEYS[1]: the stream. ARGV[1]: the consumer group. ARGV[2]: '1' to trim, '0' to only report.
-- Unacknowledged means pending (delivered, not acknowledged) or not yet delivered; everything
-- older than both the oldest pending entry and the group's last delivered entry is settled.
-- Returns {trimmed, length, pending, lag, oldest}; lag is -1 where Redis does not report it, and
-- oldest is the id of the oldest unacknowledged entry, '' when there is none.

local stream, group, trim = KEYS[1], ARGV[1], ARGV[2] == '1'
if redis.call('EXISTS', stream) == 0 then
  return {0, 0, 0, 0, ''}
end

local summary = redis.call('XPENDING', stream, group)
local pending = summary[1]
local last_delivered, lag = nil, -1
for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local fields = {}
  for i = 1, #info, 2 do
    fields[info[i]] = info[i + 1]
  end
  if fields['name'] == group then
    last_delivered = fields['last-delivered-id']
    if type(fields['lag']) == 'number' then
      lag = fields['lag']
    end
  end
end
if not last_delivered then
  return {0, redis.call('XLEN', stream), pending, lag, ''}
end

local oldest = ''
if pending > 0 then
  oldest = summary[2]
else
  local undelivered = redis.call('XRANGE', stream, '(' .. last_delivered, '+', 'COUNT', 1)
  if undelivered[1] then
    oldest = undelivered[1][1]
  end
end

-- MINID keeps entries at or after the id, so the oldest pending entry itself stays.
local keep_from = last_delivered
if pending > 0 then
  keep_from = summary[2]
end
local trimmed = 0
if trim then
  trimmed = redis.call('XTRIM', stream, 'MINID', keep_from)
end
return {trimmed, redis.call('XLEN', stream), pending, lag, oldest}
