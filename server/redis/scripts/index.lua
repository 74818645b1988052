-- index.lua — puts a campaign in the registry.
-- KEYS (every key it touches): the registry (vd:{registry}:campaigns,
--   hash: campaign id -> definition), its version (vd:{registry}:version).
-- ARGV: campaign id, definition.
-- Answers (script_replies.h, replies::index): kUnchanged 0 when the registry
-- already held that definition; kChanged 1 when it was written, and the
-- version moved.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return 1
