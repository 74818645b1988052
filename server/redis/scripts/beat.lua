-- beat.lua — a replica's beat, and the take-back of lapsed replicas' leases
-- (after the now_ms.lua prelude).
-- KEYS (every key it touches): alive (hash: replica -> its latest beat,
--   Unix ms by Redis's clock), leases, leased, stock, returns (of vd:{C}).
-- ARGV: replica ('' for a reconciliation that does not beat), lease timeout
--   (ms), overdue (ms).
-- Stamps this replica's beat, and gives back to the pool the leased units of
-- every other replica whose latest beat is older than the timeout (or that
-- holds a lease and never beat): atomically, so a replica is never half
-- taken back. A replica paused meanwhile finds its lease records gone, and
-- the claim script refuses what it would issue from them (the fence).
-- Answers (script_replies.h, replies::beat): {this replica's beat before
--   (replies::beat_state: kFresh 0, kLapsed 1, kNone 2); replicas taken
--   back; replicas overdue; units they hold; units left in the pool; then
--   (sku, units given back) pairs}.
local timeout, overdue = tonumber(ARGV[2]), tonumber(ARGV[3])
local beat = 0
if ARGV[1] ~= '' then
  local mine = redis.call('HGET', KEYS[1], ARGV[1])
  if not mine then beat = 2 elseif now - tonumber(mine) > timeout then beat = 1 end
  redis.call('HSET', KEYS[1], ARGV[1], now)
end
local last = {}
local a = redis.call('HGETALL', KEYS[1])
for i = 1, #a, 2 do last[a[i]] = tonumber(a[i + 1]) end
local gone, gone_n, late, late_n, late_units = {}, 0, {}, 0, 0
local back = {}
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local f = all[i]
  local bar = string.find(f, '|', 1, true)
  if bar then
    local rep = string.sub(f, 1, bar - 1)
    local n = tonumber(all[i + 1])
    local seen = last[rep]
    if rep ~= ARGV[1] and (seen == nil or now - seen > timeout) then
      local sku = string.sub(f, bar + 1)
      -- (Redis refuses "-0" as an integer, so zero is never sent.)
      if n ~= 0 then redis.call('HINCRBY', KEYS[3], sku, -n) end
      if n > 0 then
        redis.call('HINCRBY', KEYS[4], sku, n)
        back[sku] = (back[sku] or 0) + n
      end
      redis.call('HDEL', KEYS[2], f)
      if not gone[rep] then gone[rep] = true; gone_n = gone_n + 1 end
    elseif rep ~= ARGV[1] and n > 0 and now - seen > overdue then
      if not late[rep] then late[rep] = true; late_n = late_n + 1 end
      late_units = late_units + n
    end
  end
end
-- Replicas whose beat lapsed are forgotten (their leases are back above).
for rep, seen in pairs(last) do
  if rep ~= ARGV[1] and now - seen > timeout then redis.call('HDEL', KEYS[1], rep) end
end
local pool = 0
for _, v in ipairs(redis.call('HVALS', KEYS[4])) do pool = pool + tonumber(v) end
local out = {beat, gone_n, late_n, late_units, pool}
local any = false
for sku, n in pairs(back) do
  out[#out + 1] = sku
  out[#out + 1] = n
  any = true
end
if any then redis.call('INCR', KEYS[5]) end
return out
