// Forbidden: the ops port sees the Store interface, never the Redis store.
#include "server/redis/redis_claim_log.h"
