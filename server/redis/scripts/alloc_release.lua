-- alloc_release.lua — a replica that stops hands its allocation turn on at
-- once (server/redis/apply_log.h).
-- KEYS (every key it touches): alloc (of vd:{C}).
-- ARGV: replica.
-- When the caller has the turn of a running allocation, its beat becomes 0,
-- so the next replica to ask (alloc_take.lua) takes the turn over without
-- waiting for the lease; the cursor and the epoch stay.
-- Answers (script_replies.h, replies::alloc_release): 1 when handed on, 0
--   when the caller did not have the turn.
local f = redis.call('HMGET', KEYS[1], 'state', 'owner')
if f[1] ~= 'running' or f[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'beat', 0)
return 1
