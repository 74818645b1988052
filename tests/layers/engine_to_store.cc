// Forbidden: the engine knows nothing of the adapters.
#include "server/store/store.h"
