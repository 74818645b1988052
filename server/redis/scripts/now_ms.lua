-- now_ms.lua — a prelude, not a script: prepended (server/redis/scripts.cc)
-- to the scripts that stamp beats and leases, so that every replica is timed
-- by the one clock they share. Defines `now`: Redis's clock (TIME) in Unix ms.
-- KEYS: none (TIME names no key).
local t = redis.call('TIME')
local now = tonumber(t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000)))
