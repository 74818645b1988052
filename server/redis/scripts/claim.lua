-- claim.lua — a batch of claims of one campaign, in one atomic step.
-- KEYS (every key it touches; tests/redis/script_keys_test.cc checks):
--   issued, leases, leased, expiring, holders (of vd:{C}), then (member,
--   voucher) key pairs, one per claim, then `h` held voucher keys: records
--   the writer learned, from an earlier answer, that a claim's member holds.
-- ARGV: replica, voucher key prefix, the campaign's per-member limit, h, then
--   per claim: sku, voucher record (server/redis/records.h), the minute its
--   voucher expires in and, when the limit is above 1, the request id.
-- Answers one element per claim (script_replies.h, replies::claim):
-- kWritten 0 when written; {held code, held voucher record} when the member
-- already holds this request or their whole allowance and the held record is
-- this batch's or its key was declared; {held code} alone when it was not
-- (the writer sends the claim again with that key declared: in Redis Cluster
-- a script may touch only the keys it declares); kFenced 2 when this
-- replica's lease of the SKU has no unit left for it (the fence: its lease
-- was taken back while it was paused or cut off). A claim answered anything
-- but kWritten wrote nothing.
-- A member with an allowance of 1 is a string key holding their code (one
-- SET NX GET decides it); a larger allowance is a hash: n, last, r:<request>.
-- The batch's records go out in one MSET, its counters once per SKU, and
-- the members it gave a first voucher in one entry of the holders feed.
local out = {}
local per_sku = {}
local records = {}
local written = {}  -- code -> record, for a later claim of the batch that finds it held
local feed = {}
local new_members = 0
local per_bucket = {}
local lease_left = {}  -- sku -> units of this replica's lease not used yet
local limit = tonumber(ARGV[3])
local h = tonumber(ARGV[4])
local n = (#KEYS - 5 - h) / 2
local prefix_len = #ARGV[2]  -- the member key prefix (vd:{C}:m:) is as long
local held_key = {}  -- code -> index in KEYS of its declared record key
for j = #KEYS - h + 1, #KEYS do held_key[string.sub(KEYS[j], prefix_len + 1)] = j end
local stride = 3
if limit > 1 then stride = 4 end
for i = 1, n do
  local mk = KEYS[4 + 2 * i]
  local vk = KEYS[5 + 2 * i]
  local b = 4 + stride * (i - 1)
  local sku = ARGV[b + 1]
  local code = string.sub(vk, prefix_len + 1)
  local left = lease_left[sku]
  if left == nil then
    left = tonumber(redis.call('HGET', KEYS[2], ARGV[1] .. '|' .. sku) or '0')
    lease_left[sku] = left
  end
  local held = false
  local rid = ARGV[b + 4]
  if left <= 0 then
    -- Fenced, unless the member holds the answer already.
    if limit == 1 then
      held = redis.call('GET', mk)
    else
      held = redis.call('HGET', mk, 'r:' .. rid)
      if not held and tonumber(redis.call('HGET', mk, 'n') or '0') >= limit then
        held = redis.call('HGET', mk, 'last')
      end
    end
    if not held then out[i] = 2 end
  elseif limit == 1 then
    held = redis.call('SET', mk, code, 'NX', 'GET')
    if not held then
      new_members = new_members + 1
      local member = string.sub(mk, prefix_len + 1)
      feed[#feed + 1] = '+' .. #member .. ':' .. member
    end
  else
    held = redis.call('HGET', mk, 'r:' .. rid)
    if not held and tonumber(redis.call('HGET', mk, 'n') or '0') >= limit then
      held = redis.call('HGET', mk, 'last')
    end
    if not held then
      if redis.call('HINCRBY', mk, 'n', 1) == 1 then
        new_members = new_members + 1
        local member = string.sub(mk, prefix_len + 1)
        feed[#feed + 1] = '+' .. #member .. ':' .. member
      end
      redis.call('HSET', mk, 'last', code, 'r:' .. rid, code)
    end
  end
  if held then
    if written[held] then
      out[i] = {held, written[held]}
    elseif held_key[held] then
      out[i] = {held, redis.call('GET', KEYS[held_key[held]])}
    else
      out[i] = {held}
    end
  elseif left > 0 then
    lease_left[sku] = left - 1
    records[#records + 1] = vk
    records[#records + 1] = ARGV[b + 2]
    written[code] = ARGV[b + 2]
    per_sku[sku] = (per_sku[sku] or 0) + 1
    local bucket = sku .. '|' .. ARGV[b + 3]
    per_bucket[bucket] = (per_bucket[bucket] or 0) + 1
    out[i] = 0
  end
end
if #records > 0 then redis.call('MSET', unpack(records)) end
for sku, k in pairs(per_sku) do
  redis.call('HINCRBY', KEYS[1], sku, k)
  redis.call('HINCRBY', KEYS[2], ARGV[1] .. '|' .. sku, -k)
  redis.call('HINCRBY', KEYS[3], sku, -k)
end
for bucket, k in pairs(per_bucket) do redis.call('HINCRBY', KEYS[4], bucket, k) end
if new_members > 0 then
  redis.call('HINCRBY', KEYS[1], '_members', new_members)
  redis.call('RPUSH', KEYS[5], table.concat(feed))
end
return out
