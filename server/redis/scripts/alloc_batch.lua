-- alloc_batch.lua — one step of an allocation: rank positions [from, to)
-- written in one atomic step (after the now_ms.lua prelude;
-- server/redis/apply_log.h).
-- KEYS (every key it touches): alloc, stock, issued, expiring, won (of
--   vd:{C}), then per winner: their allowance key (m:<member>) and their
--   voucher's record key (v:<code>).
-- ARGV: replica, epoch, from, to, then per winner: member, code, SKU id,
--   SKU index, voucher record (server/redis/records.h), the minute it
--   expires in.
-- Only while the caller's turn holds: alloc's state is running, its owner
-- the replica, its epoch the epoch and its next `from`; otherwise ->
-- {kMoved 1, owner, epoch, next, total, done}, nothing written (a step whose
-- answer was lost finds next = to, and done 1 if it was the last). A step
-- that does not fit (to before from or past total, a member twice) ->
-- {kBadStep 4, what}. Then the pair checks whose first halves the replica
-- made: a winner who holds a voucher already -> {kHeld 2, member}; a SKU
-- whose stock is below the step's winners of it -> {kShort 3, SKU id}.
-- Every refusal writes nothing. Else, in
-- one step: each winner's record and allowance, won, each SKU's stock and
-- issued, the members count, the expiry buckets, next = to, selected, the
-- beat; and state done (done_ms) when to = total.
-- Answers (script_replies.h, replies::alloc_batch): {kWritten 0, owner,
--   epoch, next, total, done (1 when this step was the last, else 0)}, or a
--   refusal above.
local replica, epoch = ARGV[1], tonumber(ARGV[2])
local from, to = tonumber(ARGV[3]), tonumber(ARGV[4])
local f = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'next', 'total', 'state')
local total = tonumber(f[4] or '0')
if f[5] ~= 'running' or f[1] ~= replica or tonumber(f[2] or '0') ~= epoch or
    tonumber(f[3] or '0') ~= from then
  local done = 0
  if f[5] == 'done' then done = 1 end
  return {1, f[1] or '', tonumber(f[2] or '0'), tonumber(f[3] or '0'), total, done}
end
if to < from or to > total then return {4, 'positions ' .. from .. ' to ' .. to .. ' of ' .. total} end
local n = (#KEYS - 5) / 2
local per_sku, per_bucket, members = {}, {}, {}
for i = 1, n do
  local member = ARGV[6 * i - 1]
  if members[member] then return {4, 'member ' .. member .. ' twice'} end
  members[member] = true
  if redis.call('EXISTS', KEYS[4 + 2 * i]) == 1 then return {2, member} end
  local sku = ARGV[6 * i + 1]
  per_sku[sku] = (per_sku[sku] or 0) + 1
end
for sku, k in pairs(per_sku) do
  if tonumber(redis.call('HGET', KEYS[2], sku) or '0') < k then return {3, sku} end
end
local won = {}
for i = 1, n do
  local b = 6 * i - 1  -- the winner's member
  local mk, vk = KEYS[4 + 2 * i], KEYS[5 + 2 * i]
  redis.call('SET', vk, ARGV[b + 4])
  redis.call('SET', mk, ARGV[b + 1])
  won[#won + 1] = ARGV[b]
  won[#won + 1] = ARGV[b + 3]
  local bucket = ARGV[b + 2] .. '|' .. ARGV[b + 5]
  per_bucket[bucket] = (per_bucket[bucket] or 0) + 1
end
if n > 0 then
  redis.call('HSET', KEYS[5], unpack(won))
  for sku, k in pairs(per_sku) do
    redis.call('HINCRBY', KEYS[2], sku, -k)
    redis.call('HINCRBY', KEYS[3], sku, k)
  end
  redis.call('HINCRBY', KEYS[3], '_members', n)
  for bucket, k in pairs(per_bucket) do redis.call('HINCRBY', KEYS[4], bucket, k) end
  redis.call('HINCRBY', KEYS[1], 'selected', n)
end
redis.call('HSET', KEYS[1], 'next', to, 'beat', now)
local done = 0
if to == total then
  redis.call('HSET', KEYS[1], 'state', 'done', 'done_ms', now)
  done = 1
end
return {0, replica, epoch, to, total, done}
