-- application.lua — a member's application to an APPLY_THEN_DRAW campaign
-- and where it stands, in one atomic step (server/redis/apply_log.h).
-- KEYS (every key it touches): apps, won, alloc (of vd:{C}), the member's
--   allowance key (m:<member>), then, when an earlier answer named the
--   member's code, that voucher's record key (v:<code>).
-- ARGV: member, the voucher key prefix (vd:{C}:v:).
-- SELECTED as soon as the allocation step that wrote the member's voucher
-- has run (it writes won, m: and v: together; never revoked); NOT_SELECTED
-- only once the allocation is done; PENDING before.
-- Answers (script_replies.h, replies::application): {kNotFound 0};
--   {kPending 1, application}; {kNotSelected 3, application};
--   {kSelected 2, application, SKU index, code, voucher record} when the
--   record key was declared; {kRecordKey 4, code} when it was not (nothing
--   read: ask again declaring it).
local member, prefix = ARGV[1], ARGV[2]
local stored = redis.call('HGET', KEYS[1], member)
if not stored then return {0} end
local sku = redis.call('HGET', KEYS[2], member)
if sku then
  local code = redis.call('GET', KEYS[4])
  if not code then return redis.error_reply('won holds ' .. member .. ' but m: does not') end
  if #KEYS < 5 or KEYS[5] ~= prefix .. code then return {4, code} end
  local record = redis.call('GET', KEYS[5])
  if not record then return redis.error_reply('no record for ' .. member .. "'s voucher") end
  return {2, stored, tonumber(sku), code, record}
end
if redis.call('HGET', KEYS[3], 'state') == 'done' then return {3, stored} end
return {1, stored}
