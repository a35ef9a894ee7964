#include "tern/ingest/main.h"

int main(int argc, char** argv) { return tern::ingest::runMain(argc, argv); }
