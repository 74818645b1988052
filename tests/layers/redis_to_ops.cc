// Forbidden: the Redis store does not reach into the ops port.
#include "server/ops/metrics.h"
