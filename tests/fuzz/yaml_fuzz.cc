// libFuzzer target: the YAML a user points greenloop at. The input becomes a file (the loaders
// read files) and goes through the experiment spec loader (LoadSpec: every key, its checks and
// the cross-key rules) and, when the first byte is odd, through a service's config loader
// (config::Schema::LoadFile with keys of every kind).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/config/config.h"
#include "tools/greenloop/experiment/spec.h"

namespace {

const std::string& InputPath() {
  static const std::string path =
      std::string(std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp") +
      "/greenloop-yaml-fuzz-" + std::to_string(::getpid()) + ".yaml";
  return path;
}

void LoadAsServiceConfig(const std::string& path) {
  std::string address = "127.0.0.1:7101";
  std::int64_t port = 0;
  double pue = 1.5;
  bool disabled = false;
  std::chrono::milliseconds interval{1000};
  std::vector<std::string> endpoints;
  greenloop::config::Schema schema("fuzz");
  schema.Add("grpc.address", &address, "address")
      .Add("grpc.port", &port, "port", {.min = 0, .max = 65535})
      .Add("carbon.pue", &pue, "pue", {.min = 1.0, .max = 5.0})
      .Add("auth.disabled", &disabled, "flag")
      .Add("interval", &interval, "interval", {.min = 50})
      .Add("endpoints.allowed", &endpoints, "list")
      .Add("log.level", &address, "level", {.one_of = {"debug", "info"}});
  (void)schema.LoadFile(path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  {
    std::ofstream out(InputPath(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data) + 1, static_cast<std::streamsize>(size - 1));
  }
  if (data[0] % 2 == 0) {
    (void)greenloop::experiment::LoadSpec(InputPath());
  } else {
    LoadAsServiceConfig(InputPath());
  }
  return 0;
}
