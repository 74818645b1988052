-- cancel.lua — cancels a voucher in one atomic step (after the
-- record_fields.lua prelude).
-- KEYS (every key it touches; tests/redis/script_keys_test.cc checks):
--   voucher, issued, stock, returns, cancelled (hash: SKU -> count),
--   expiring, holders (the feed, records.h), and, when known, the allowance
--   key of the voucher's member.
-- ARGV: code, keep allowance (1 or 0), per-member limit, the member whose
--   allowance key is KEYS[8] ('' when none is declared), return the unit to
--   the stock (1 or 0; LOTTERY prizes are not returned).
-- Answers {status} or {status, record} (script_replies.h, replies::cancel):
-- kCancelled 0, kNotFound 1, kCancelledBefore 2, kRedeemed 3 (not
-- cancelled); or {kMemberKey 5, member} when the allowance must be freed and
-- the key declared is not the record's member's: nothing is written, and the
-- writer asks again declaring that member's key (a record's member never
-- changes, so the second call finds it declared).
local v = redis.call('GET', KEYS[1])
if not v then return {1} end
local state = string.sub(v, 1, 1)
if state == '2' then return {3, v} end
if state == '4' then return {2, v} end
local f = record_fields(v, 8)
local sku, member, rid = f[1], f[3], f[4]
if ARGV[2] == '0' and (#KEYS < 8 or ARGV[4] ~= member) then return {5, member} end
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
  local mk = KEYS[8]
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
