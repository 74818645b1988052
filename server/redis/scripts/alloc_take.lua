-- alloc_take.lua — a replica asks for the allocation's turn of an
-- APPLY_THEN_DRAW campaign (after the now_ms.lua prelude;
-- server/redis/apply_log.h).
-- KEYS (every key it touches): alloc (hash: state, owner, epoch, beat,
--   next, total, selected, started_ms, done_ms), apps, stock (of vd:{C}).
-- ARGV: replica, lease (ms), allocation_at (Unix ms), then the SKU ids.
-- By Redis's clock: before allocation_at -> kTooEarly 0, nothing changed;
-- done -> kDone 3; no state yet -> the allocation begins: the applications
-- are frozen (total = HLEN apps; apply.lua refuses any later one), this
-- replica has the turn with epoch 1 and next 0 -> kTaken 2; the caller's
-- own turn -> its beat is renewed, kTaken; an owner whose beat is older than
-- the lease (or was handed back, beat 0) -> the turn passes to the caller
-- with the next epoch, kTaken, and the old owner's writes are fenced
-- (alloc_batch.lua checks the epoch); else kBusy 1.
-- Answers (script_replies.h, replies::alloc_take): {kind, owner, epoch,
--   next, total}, then each SKU's stock left.
local replica, lease, at = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local f = redis.call('HMGET', KEYS[1], 'state', 'owner', 'epoch', 'beat', 'next', 'total')
local kind = 1
local owner, epoch = f[2] or '', tonumber(f[3] or '0')
local next_at, total = tonumber(f[5] or '0'), tonumber(f[6] or '0')
if f[1] == 'done' then
  kind = 3
elseif not f[1] then
  if now < at then
    kind = 0
  else
    kind, owner, epoch, next_at = 2, replica, 1, 0
    total = redis.call('HLEN', KEYS[2])
    redis.call('HSET', KEYS[1], 'state', 'running', 'owner', owner, 'epoch', epoch, 'beat', now,
               'next', next_at, 'total', total, 'selected', 0, 'started_ms', now)
  end
elseif owner == replica then
  kind = 2
  redis.call('HSET', KEYS[1], 'beat', now)
elseif now - tonumber(f[4] or '0') > lease then
  kind, owner, epoch = 2, replica, epoch + 1
  redis.call('HSET', KEYS[1], 'owner', owner, 'epoch', epoch, 'beat', now)
end
local out = {kind, owner, epoch, next_at, total}
for i = 4, #ARGV do out[#out + 1] = tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0') end
return out
