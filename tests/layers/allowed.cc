// The control: the front may include the ops port's metrics and the store.
#include "server/ops/metrics.h"
#include "server/store/store.h"
