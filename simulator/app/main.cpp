#include "tern/sim/main.h"

int main(int argc, char** argv) { return tern::sim::runMain(argc, argv); }
