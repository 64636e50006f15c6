-- Reports whether a shard's data is whole, and closes it at once when it is not: its epoch was set
-- on another server than the one answering (Redis restarted from an older file, or failed over to
-- a replica that missed the last writes), so every script on it refuses until it is rebuilt.
-- KEYS[1]: the shard's epoch key. KEYS[2]: its run-id key.
-- Returns {epoch or '', recorded run id or '', this server's run id}; the epoch is '' for a
-- shard this call closed.

local server = redis.call('INFO', 'server')
local run_id = string.match(server, 'run_id:(%x+)') or ''
local epoch = redis.call('GET', KEYS[1])
local recorded = redis.call('GET', KEYS[2]) or ''
if epoch and recorded ~= run_id then
  redis.call('DEL', KEYS[1])
  epoch = false
end
return {epoch or '', recorded, run_id}
