-- lease.lua — leases units of the shared stock to one replica (after the
-- now_ms.lua prelude). The call counts as a beat.
-- KEYS (every key it touches): stock, leases, leased, returns, alive, holders (of vd:{C}).
-- ARGV: replica, lease timeout (ms), then (sku, wanted) pairs.
-- Takes at most what remains (never below zero).
-- Answers (script_replies.h, replies::lease): per SKU asked, three integers:
-- granted, left in the pool, and units leased to the other replicas; then
-- three more: the count of reconciliations that gave units back, the length
-- of the holders feed, and this replica's beat before this call
-- (replies::beat_state: kFresh 0, kLapsed 1, kNone 2 = its leases were taken
-- back, or it never leased).
local mine = redis.call('HGET', KEYS[5], ARGV[1])
local beat = 0
if not mine then beat = 2 elseif now - tonumber(mine) > tonumber(ARGV[2]) then beat = 1 end
redis.call('HSET', KEYS[5], ARGV[1], now)
local out = {}
for i = 3, #ARGV, 2 do
  local f = ARGV[1] .. '|' .. ARGV[i]
  local have = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  local g = math.min(have, tonumber(ARGV[i + 1]))
  if g > 0 then
    redis.call('HINCRBY', KEYS[1], ARGV[i], -g)
    redis.call('HINCRBY', KEYS[2], f, g)
    redis.call('HINCRBY', KEYS[3], ARGV[i], g)
  end
  local held = tonumber(redis.call('HGET', KEYS[2], f) or '0')
  local all = tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0')
  out[#out + 1] = g
  out[#out + 1] = have - g
  out[#out + 1] = all - held
end
out[#out + 1] = tonumber(redis.call('GET', KEYS[4]) or '0')
out[#out + 1] = redis.call('LLEN', KEYS[6])
out[#out + 1] = beat
return out
