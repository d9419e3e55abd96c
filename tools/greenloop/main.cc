// `greenloop`: wiring only; the commands live in commands.cc.
#include <iostream>
#include <string_view>
#include <vector>

#include "tools/greenloop/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  return greenloop::cli::Main(args, greenloop::config::ProcessEnvironment(), std::cout, std::cerr);
}
