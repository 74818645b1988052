-- draw.lua — decides a batch of draws of one LOTTERY campaign in order, in
-- one atomic step, and logs them (server/redis/lottery_log.h).
-- KEYS (every key it touches; tests/redis/script_keys_test.cc checks):
--   stock, issued, expiring, drawn, the draw log's chunks c and c + 1
--   (drawn:<c>, drawn:<c+1>), then per draw: the member's draw record, their
--   allowance key, and the voucher key of the code minted for the SKU the
--   replica expects a win to pick (the draw record again when none was
--   minted); then `h` voucher keys of repeats' prizes (their records, which
--   an earlier answer named).
-- ARGV: voucher key prefix, prize stock in total, draws per day, prizes per
--   member, weighted (1/0), starts_at (ms), retries remembered per member,
--   c, h, the number of SKUs, the SKU ids, [the weights,] then per draw:
--   request id, draw number (the replica's guess), local day, released,
--   lucky (1/0), pick (53 bits), SKU guessed (index or -1), voucher record,
--   expiry minute, the draw log line's start ("<len>:<member>\t<n>\t<ms
--   since starts_at>\t") and the retry entry's start ("<n>\31<time in
--   ms>\31").
-- Answers (script_replies.h, replies::draw): the chunk the draw log goes on
--   in, as one integer, when the batch's lines would not all land in chunks
--   c and c + 1: nothing changed (the writer asks again with that chunk).
--   Otherwise per draw: {kDrawn 0, outcome letter, SKU index or -1,
--   remaining before, draws today} decided and logged; {kRepeat 1, entry,
--   voucher record or nil, draws today} a retry; {kDailyLimit 2, draws
--   today} at the daily limit; {kWrongNumber 3, next draw number} or
--   {kWrongSku 4, SKU index} the replica guessed wrong, nothing changed;
--   {kRecordKey 5, code} a retry of a win whose record key was not
--   declared, nothing changed. Then each SKU's prize units left, then the
--   draws logged after the batch.
local prefix = ARGV[1]
local stock_total = tonumber(ARGV[2])
local per_day = tonumber(ARGV[3])
local prizes_max = tonumber(ARGV[4])
local weighted = ARGV[5] == '1'
local base_ms = tonumber(ARGV[6])
local keep = tonumber(ARGV[7])
local chunk = tonumber(ARGV[8])
local h = tonumber(ARGV[9])
local nsku = tonumber(ARGV[10])
local ids = {}
for k = 1, nsku do ids[k] = ARGV[10 + k] end
local a = 11 + nsku
local n = (#KEYS - 6 - h) / 3
local record_key = {}  -- code -> index in KEYS of its declared record key
for j = #KEYS - h + 1, #KEYS do record_key[string.sub(KEYS[j], #prefix + 1)] = j end
local weights = {}
if weighted then
  for k = 1, nsku do weights[k] = tonumber(ARGV[a + k - 1]) end
  a = a + nsku
end
local rem = redis.call('HMGET', KEYS[1], unpack(ids))
local left = 0
for k = 1, nsku do
  rem[k] = tonumber(rem[k] or '0')
  left = left + rem[k]
end
local won, per_bucket, chunks, written = {}, {}, {}, {}
local new_members = 0
local seq = tonumber(redis.call('GET', KEYS[4]) or '0')
-- Each decided draw logs one line, to chunk floor((line - 1) / 65536): the
-- batch's lines must fall in the two chunks declared.
local first = math.floor(seq / 65536)
if first < chunk or math.floor((seq + n - 1) / 65536) > chunk + 1 then return first end
local function weight(k)
  if rem[k] <= 0 then return 0 end
  if weighted then return weights[k] end
  return rem[k]
end
local function choose(pick)
  local total = 0
  for k = 1, nsku do total = total + weight(k) end
  if total <= 0 then return -1 end
  local point = math.floor(pick / 9007199254740992 * total)
  for k = 1, nsku do
    local w = weight(k)
    if point < w then return k - 1 end
    point = point - w
  end
  return -1
end
local function draw(i)
  local dk, mk, vk = KEYS[4 + 3 * i], KEYS[5 + 3 * i], KEYS[6 + 3 * i]
  local b = a + 11 * (i - 1)
  local rid, guess, day = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local released, lucky, pick = tonumber(ARGV[b + 3]), ARGV[b + 4] == '1', tonumber(ARGV[b + 5])
  local sku_guess = tonumber(ARGV[b + 6])
  -- The member's record: draws, day, draws that day, prizes, then the
  -- latest draws (each '\30' <len>:<request id> '\31' entry).
  local dn, dd, dc, dw, recent = 0, -1, 0, 0, ''
  local v = redis.call('GET', dk)
  if v then
    dn, dd, dc, dw, recent = string.match(v, '^(%d+)\31(%-?%d+)\31(%d+)\31(%d+)\31(.*)$')
    dn, dd, dc, dw = tonumber(dn), tonumber(dd), tonumber(dc), tonumber(dw)
  end
  -- A day before the member's latest (a replica's clock a little behind)
  -- counts as that day.
  local same_day = day <= dd
  local today = 0
  if same_day then today = dc end
  local tag = '\30' .. #rid .. ':' .. rid .. '\31'
  local s = string.find(recent, tag, 1, true)
  if s then
    local e = string.find(recent, '\30', s + 1, true)
    local entry = string.sub(recent, s + #tag, (e or 0) - 1)
    local code = string.match(entry, '([^\31]*)$')
    local record = false
    if code ~= '' then
      record = written[code]
      if not record then
        if not record_key[code] then return {5, code} end
        record = redis.call('GET', KEYS[record_key[code]])
      end
    end
    return {1, entry, record, today}
  end
  if same_day and dc >= per_day then return {2, dc} end
  if dn + 1 ~= guess then return {3, dn + 1} end
  local o, sku = 'U', -1
  if dw >= prizes_max then
    o = 'A'
  elseif not lucky then
    o = 'U'
  elseif left <= 0 then
    o = 'G'
  elseif stock_total - left >= released then
    o = 'P'
  else
    sku = choose(pick)
    if sku < 0 then
      o = 'G'
    elseif sku ~= sku_guess then
      return {4, sku}
    else
      o = 'W'
    end
  end
  local before = left
  local code = ''
  if o == 'W' then
    local k = sku + 1
    rem[k] = rem[k] - 1
    left = left - 1
    won[k] = (won[k] or 0) + 1
    code = string.sub(vk, #prefix + 1)
    redis.call('SET', vk, ARGV[b + 7])
    written[code] = ARGV[b + 7]
    local bucket = ids[k] .. '|' .. ARGV[b + 8]
    per_bucket[bucket] = (per_bucket[bucket] or 0) + 1
    if prizes_max == 1 then
      redis.call('SET', mk, code)
    else
      redis.call('HINCRBY', mk, 'n', 1)
      redis.call('HSET', mk, 'last', code, 'r:' .. rid, code)
    end
    if dw == 0 then new_members = new_members + 1 end
    dw = dw + 1
  end
  seq = seq + 1
  local c = math.floor((seq - 1) / 65536)
  chunks[c] = chunks[c] or {}
  local t = chunks[c]
  local decided = o .. '\t' .. sku .. '\t' .. ARGV[b + 3] .. '\t' .. before
  t[#t + 1] = ARGV[b + 9] .. decided .. '\n'
  recent = recent .. tag .. ARGV[b + 10] .. string.gsub(decided, '\t', '\31') .. '\31' .. code
  local starts, p = {}, 1
  while true do
    local q = string.find(recent, '\30', p, true)
    if not q then break end
    starts[#starts + 1] = q
    p = q + 1
  end
  if #starts > keep then recent = string.sub(recent, starts[#starts - keep + 1]) end
  today = today + 1
  if day > dd then dd = day end
  redis.call('SET', dk, ARGV[b + 1] .. '\31' .. dd .. '\31' .. today .. '\31' .. dw .. '\31' .. recent)
  return {0, o, sku, before, today}
end
local out = {}
for i = 1, n do out[i] = draw(i) end
for k, cnt in pairs(won) do
  redis.call('HINCRBY', KEYS[1], ids[k], -cnt)
  redis.call('HINCRBY', KEYS[2], ids[k], cnt)
end
for bucket, cnt in pairs(per_bucket) do redis.call('HINCRBY', KEYS[3], bucket, cnt) end
if new_members > 0 then redis.call('HINCRBY', KEYS[2], '_members', new_members) end
for c, t in pairs(chunks) do redis.call('APPEND', KEYS[5 + c - chunk], table.concat(t)) end
redis.call('SET', KEYS[4], seq)
out[n + 1] = rem
out[n + 2] = seq
return out
