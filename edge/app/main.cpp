#include "tern/edge/main.h"

int main(int argc, char** argv) { return tern::edge::runMain(argc, argv); }
