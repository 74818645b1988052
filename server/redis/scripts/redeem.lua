-- redeem.lua — the redemption rules of engine/redemption.h as one atomic
-- step (after the record_fields.lua prelude).
-- KEYS (every key it touches): voucher, redeemed (hash: SKU -> count),
--   redeemed codes (set), expiring.
-- ARGV: site, now (unix us), request id, code, track expiring (1 or 0).
-- Answers {status} or {status, record} (script_replies.h, replies::redeem):
-- kRedeemed 0, kNotFound 1, kWrongSite 2, kRedeemedBefore 3, kCancelled 4,
-- kExpired 5.
local v = redis.call('GET', KEYS[1])
if not v then return {1} end
local f = record_fields(v, 8)
if f[2] ~= ARGV[1] then return {2} end
local state = string.sub(v, 1, 1)
if state == '2' then return {3, v} end
if state == '4' then return {4, v} end
if tonumber(ARGV[2]) >= tonumber(f[8]) then return {5, v} end
local r = '2' .. string.sub(v, 2) .. #ARGV[1] .. ':' .. ARGV[1] .. #ARGV[2] .. ':' .. ARGV[2] ..
          #ARGV[3] .. ':' .. ARGV[3]
redis.call('SET', KEYS[1], r)
redis.call('HINCRBY', KEYS[2], f[1], 1)
redis.call('SADD', KEYS[3], ARGV[4])
if ARGV[5] == '1' then
  -- No longer ISSUED: out of its expiry bucket.
  local b = f[1] .. '|' .. string.format('%d', math.floor(tonumber(f[8]) / 60000000))
  if redis.call('HINCRBY', KEYS[4], b, -1) <= 0 then redis.call('HDEL', KEYS[4], b) end
end
return {0, r}
