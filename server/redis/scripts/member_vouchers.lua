-- member_vouchers.lua — a member's vouchers in one campaign, in one atomic
-- step.
-- KEYS (every key it touches; tests/redis/script_keys_test.cc checks): the
--   member's allowance key, then the record keys of the codes the caller
--   expects it to hold (none at first).
-- ARGV: voucher key prefix (to tell which code a declared key is; no key is
--   made from it).
-- A string allowance holds one code; a hash holds r:<request> -> code.
-- Answers (script_replies.h, replies::member_vouchers):
--   {kListed 0, code, record, code, record, ...} when every code the
--   allowance holds was declared (codes whose record is missing are left
--   out); {kUndeclared 1, code, code, ...} every code it holds, when one of
--   them was not declared: nothing else is read, and the writer asks again
--   declaring those (in Redis Cluster a script may touch only the keys it
--   declares).
local t = redis.call('TYPE', KEYS[1])['ok']
local codes = {}
if t == 'string' then
  codes[1] = redis.call('GET', KEYS[1])
elseif t == 'hash' then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'r:' then codes[#codes + 1] = all[i + 1] end
  end
end
local declared = {}  -- code -> index in KEYS of its record key
for j = 2, #KEYS do declared[string.sub(KEYS[j], #ARGV[1] + 1)] = j end
for _, c in ipairs(codes) do
  if not declared[c] then
    local out = {1}
    for k = 1, #codes do out[k + 1] = codes[k] end
    return out
  end
end
local out = {0}
for _, c in ipairs(codes) do
  local r = redis.call('GET', KEYS[declared[c]])
  if r then
    out[#out + 1] = c
    out[#out + 1] = r
  end
end
return out
