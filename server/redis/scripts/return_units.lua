-- return_units.lua — hands leased units back to the shared pool.
-- KEYS (every key it touches): stock, leases, leased (of vd:{C}).
-- ARGV: replica, then (sku, units) pairs.
-- Gives back at most what this replica's lease still records.
-- Answers: per SKU, the units given back.
local out = {}
for i = 2, #ARGV, 2 do
  local f = ARGV[1] .. '|' .. ARGV[i]
  local held = tonumber(redis.call('HGET', KEYS[2], f) or '0')
  local n = math.max(math.min(held, tonumber(ARGV[i + 1])), 0)
  if n > 0 then
    redis.call('HINCRBY', KEYS[1], ARGV[i], n)
    redis.call('HINCRBY', KEYS[3], ARGV[i], -n)
  end
  if held - n <= 0 then redis.call('HDEL', KEYS[2], f) else redis.call('HINCRBY', KEYS[2], f, -n) end
  out[#out + 1] = n
end
return out
