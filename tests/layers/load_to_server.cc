// Forbidden: the load generator is a client; it includes no server header.
#include "server/grpc/status_map.h"
