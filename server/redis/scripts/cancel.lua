-- cancel.lua — cancels a voucher in one atomic step (after the
-- record_fields.lua prelude).
-- KEYS: voucher, issued, stock, returns, cancelled (hash: SKU -> count), expiring,
--   holders (the feed, records.h).
-- ARGV: code, keep allowance (1 or 0), per-member limit, member key prefix,
--   return the unit to the stock (1 or 0; LOTTERY prizes are not returned).
-- Answers {status} or {status, record} (script_replies.h, replies::cancel):
-- kCancelled 0, kNotFound 1, kCancelledBefore 2, kRedeemed 3 (not cancelled).
local v = redis.call('GET', KEYS[1])
if not v then return {1} end
local state = string.sub(v, 1, 1)
if state == '2' then return {3, v} end
if state == '4' then return {2, v} end
local f = record_fields(v, 8)
local sku, member, rid = f[1], f[3], f[4]
-- No longer ISSUED: out of its expiry bucket.
local b = sku .. '|' .. string.format('%d', math.floor(tonumber(f[8]) / 60000000))
if redis.call('HINCRBY', KEYS[6], b, -1) <= 0 then redis.call('HDEL', KEYS[6], b) end
local c = '4' .. string.sub(v, 2)
redis.call('SET', KEYS[1], c)
if ARGV[5] == '1' then
  redis.call('HINCRBY', KEYS[2], sku, -1)
  redis.call('HINCRBY', KEYS[3], sku, 1)
  redis.call('INCR', KEYS[4])
end
redis.call('HINCRBY', KEYS[5], sku, 1)
if ARGV[2] == '0' then
  -- The member key has the campaign's hash tag: same slot as the voucher.
  local mk = ARGV[4] .. member
  local freed, none_left = false, '0'
  if tonumber(ARGV[3]) == 1 then
    if redis.call('GET', mk) == ARGV[1] then
      redis.call('DEL', mk)
      redis.call('HINCRBY', KEYS[2], '_members', -1)
      freed, none_left = true, '1'
    end
  elseif redis.call('HGET', mk, 'r:' .. rid) == ARGV[1] then
    redis.call('HDEL', mk, 'r:' .. rid)
    freed = true
    if redis.call('HINCRBY', mk, 'n', -1) <= 0 then
      redis.call('DEL', mk)
      redis.call('HINCRBY', KEYS[2], '_members', -1)
      none_left = '1'
    end
  end
  -- Every replica frees the allowance too (the holders feed).
  if freed then
    redis.call('RPUSH', KEYS[7], '-' .. #member .. ':' .. member .. #ARGV[1] .. ':' .. ARGV[1] ..
      none_left)
  end
end
return {0, c}
