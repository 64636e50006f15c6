-- Reports whether a shard's data is whole: its epoch, and the run id of the Redis server the
-- epoch was set on beside this server's own (they differ after a restart or a failover, when
-- writes acknowledged just before may be gone).
-- KEYS[1]: the shard's epoch key. KEYS[2]: its run-id key.
-- Returns {epoch or '', recorded run id or '', this server's run id}.

local server = redis.call('INFO', 'server')
local run_id = string.match(server, 'run_id:(%x+)') or ''
return {redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[2]) or '', run_id}
