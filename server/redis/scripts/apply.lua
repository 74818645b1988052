-- apply.lua — a batch of applications to one APPLY_THEN_DRAW campaign, in
-- one atomic step (after the now_ms.lua prelude; server/redis/apply_log.h).
-- KEYS (every key it touches; tests/redis/script_keys_test.cc checks): apps
--   (hash member -> application), alloc (hash: the allocation's state) of
--   vd:{C}.
-- ARGV: starts_at and ends_at (Unix ms), the campaign's bound on
--   applications, then per application: member, request id, preferred SKU
--   indexes ("2,0", or '').
-- A stored application is "<applied_at ms>\31<request id>\31<SKU indexes>".
-- Decided by Redis's clock, so every replica closes the window at the same
-- instant, and the set the allocation freezes (alloc_take.lua) is the set
-- the replicas answered for; and no application exists before starts_at, so
-- a definition replaced before it opens (register.lua) never has any. In
-- order, per application: before starts_at -> kNotOpen 5; at or after
-- ends_at, or once the allocation has begun (alloc has a state) ->
-- kClosed 3; the member's stored application was made by this request id ->
-- kRepeat 2, unchanged; made by another -> kReplaced 1, stored anew with
-- this time; a new member while the campaign holds the bound -> kFull 4;
-- else kRecorded 0.
-- Answers (script_replies.h, replies::apply): per application {status, the
--   application as it now stands}, or {status} alone for kNotOpen, kClosed
--   and kFull.
local starts, ends, bound = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local early = now < starts
local closed = now >= ends or redis.call('HEXISTS', KEYS[2], 'state') == 1
local count = nil
local out = {}
for i = 4, #ARGV - 2, 3 do
  local member, rid, prefs = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if early then
    out[#out + 1] = {5}
  elseif closed then
    out[#out + 1] = {3}
  else
    local stored = redis.call('HGET', KEYS[1], member)
    if stored and string.match(stored, '^[^\31]*\31([^\31]*)\31') == rid then
      out[#out + 1] = {2, stored}
    else
      if not stored and count == nil then count = redis.call('HLEN', KEYS[1]) end
      if not stored and count >= bound then
        out[#out + 1] = {4}
      else
        local v = now .. '\31' .. rid .. '\31' .. prefs
        redis.call('HSET', KEYS[1], member, v)
        if stored then
          out[#out + 1] = {1, v}
        else
          count = count + 1
          out[#out + 1] = {0, v}
        end
      end
    end
  end
end
return out
