// voucherd — the production program: memory or Redis store (see app.h).
#include "server/app/app.h"

int main(int argc, char** argv) { return voucherd::run_voucherd(argc, argv, {}); }
