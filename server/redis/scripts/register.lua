-- register.lua — stores a campaign's definition and its stock, or tells why not.
-- KEYS (every key it touches): def, opens, stock, issued, leases, leased,
--   seed (of vd:{C}).
-- ARGV: definition, opens at (unix us), replace (1 or 0), then (sku, stock) pairs.
-- Answers one integer (script_replies.h, replies::registration): kCreated 2;
-- kSame 1 (the same definition already there); kReplaced 3 (replace asked,
-- and allowed). A different definition is there and stays: kDifferent 0 (no
-- replace asked), kHasOpened -1 (by Redis's clock), kHasIssued -2 (vouchers
-- were issued), kHasLeases -3 (units are leased).
local cur = redis.call('GET', KEYS[1])
if cur then
  if cur == ARGV[1] then return 1 end
  if ARGV[3] ~= '1' then return 0 end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  if now >= tonumber(redis.call('GET', KEYS[2]) or '0') then return -1 end
  if redis.call('EXISTS', KEYS[4]) == 1 then return -2 end
  if redis.call('HLEN', KEYS[5]) > 0 then return -3 end
  -- A replaced LOTTERY gets a new seed (and commitment) from its first replica.
  redis.call('DEL', KEYS[3], KEYS[6], KEYS[7])
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
if cur then return 3 end
return 2
