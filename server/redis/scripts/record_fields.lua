-- record_fields.lua — a prelude, not a script: prepended
-- (server/redis/scripts.cc) to the scripts that read a voucher record
-- (records.h). Defines record_fields(v, n): the first n fields of a record,
-- after its state digit.
-- KEYS: none (it only parses a value its script read).
local function record_fields(v, n)
  local f = {}
  local pos = 2
  for i = 1, n do
    local colon = string.find(v, ':', pos, true)
    local len = tonumber(string.sub(v, pos, colon - 1))
    f[i] = string.sub(v, colon + 1, colon + len)
    pos = colon + len + 1
  end
  return f
end
