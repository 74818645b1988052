-- replicas.lua — what ListReplicas shows of one campaign (after the now_ms.lua
-- prelude). Reads only.
-- KEYS (every key it touches): alive (hash: replica -> its latest beat, Unix
--   ms by Redis's clock), leases (hash: 'replica|SKU' -> units) (of vd:{C}).
-- ARGV: none.
-- Answers: {now (Unix ms, Redis's clock), alive as HGETALL, leases as HGETALL}:
--   one script, so the ages are taken by the clock that stamped the beats.
return {now, redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
