-- member_vouchers.lua — a member's vouchers in one campaign.
-- KEYS: the member's allowance key. ARGV: voucher key prefix.
-- A string holds one code; a hash holds r:<request> -> code.
-- Answers {code, record, code, record, ...} (codes whose record is missing
-- are left out).
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
local out = {}
for _, c in ipairs(codes) do
  -- The voucher keys carry the campaign's hash tag: same slot.
  local r = redis.call('GET', ARGV[1] .. c)
  if r then
    out[#out + 1] = c
    out[#out + 1] = r
  end
end
return out
