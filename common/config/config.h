// Typed configuration for every greenloop binary: a YAML file, overridden by GREENLOOP_*
// environment variables, overridden by command-line flags.
//
// A service declares its config as a plain struct with defaults and binds each field to a dotted
// key once; Load() fills the struct and rejects anything it does not understand, naming the key
// and where it came from. Precedence, lowest first: the struct's defaults, the YAML file, the
// environment, the flags.
//
//   struct EnergyConfig { std::int64_t grpc_port = 7101; std::string pg_url; double pue = 1.2; };
//
//   EnergyConfig cfg;
//   config::Schema schema("greenloop-energy");
//   schema.Add("grpc.port", &cfg.grpc_port, "gRPC listen port", {.min = 0, .max = 65535})
//         .Add("pg.url", &cfg.pg_url, "PostgreSQL connection string", {.secret = true})
//         .Add("carbon.pue", &cfg.pue, "power usage effectiveness", {.min = 1.0});
//   if (absl::Status s = schema.Load(argc, argv); !s.ok()) { print s.message(); return 2; }
//   if (schema.help_requested()) { print schema.Usage(); return 0; }
//
// Sources, for key `grpc.port`:
//   file   `--config PATH` or GREENLOOP_CONFIG=PATH; nested maps (`grpc: {port: 7101}`) or dotted
//          keys (`grpc.port: 7101`). Unknown keys are errors ("did you mean ...?").
//   env    GREENLOOP_GRPC_PORT=7101 (dots become underscores, upper case). Unknown GREENLOOP_*
//          variables are ignored, because one environment (a compose file, a pod) is shared by
//          several binaries; GREENLOOP_CONFIG names the file.
//   flags  --grpc.port=7101 or --grpc.port 7101; a bool flag alone means true. Unknown flags and
//          positional arguments are errors. --help sets help_requested().
//
// Durations take a unit: "250ms", "5s", "2m", "1h". Lists are YAML sequences, or comma-separated
// in the environment and on the command line.
//
// Thread-safety: a Schema is used from one thread during start-up; not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace greenloop::config {

// Constraints on one key. min/max apply to numbers and durations (durations in milliseconds).
struct KeyOptions {
  std::optional<double> min;
  std::optional<double> max;
  // The value is never printed (Dump(), errors); use for passwords and connection strings.
  bool secret = false;
  // Accepted values for a string key; empty means any.
  std::vector<std::string> one_of;
};

// Where a key's value came from, for Dump() and error messages.
enum class Source { kDefault, kFile, kEnvironment, kFlag };

// The environment, as name → value; tests pass their own, main passes ProcessEnvironment().
using Environment = std::map<std::string, std::string, std::less<>>;
Environment ProcessEnvironment();

// Returns this host's name as a node label: the first DNS label, lower case, other characters
// than [a-z0-9-] replaced by '-', at most 63 characters ("GPU-Node_3.lab" → "gpu-node-3"). Every
// service defaults its node name to it, so that the energy collector and the trainers on one node
// agree without configuration.
std::string DefaultNodeName();

class Schema final {
 public:
  explicit Schema(std::string program);

  // Binds `key` to `*field`, whose current value is the default. `field` must outlive Load().
  // Keys are lower_snake words joined by dots; binding one twice crashes (a programming error).
  Schema& Add(std::string key, std::string* field, std::string help, KeyOptions options = {});
  Schema& Add(std::string key, bool* field, std::string help, KeyOptions options = {});
  Schema& Add(std::string key, std::int64_t* field, std::string help, KeyOptions options = {});
  Schema& Add(std::string key, int* field, std::string help, KeyOptions options = {});
  Schema& Add(std::string key, double* field, std::string help, KeyOptions options = {});
  Schema& Add(std::string key, std::chrono::milliseconds* field, std::string help,
              KeyOptions options = {});
  Schema& Add(std::string key, std::vector<std::string>* field, std::string help,
              KeyOptions options = {});

  // Adds a check run after all sources are loaded, for rules that span keys (or required keys);
  // its error is returned from Load() as is. Checks are skipped when --help was given.
  Schema& Check(std::function<absl::Status()> check);

  // Loads file, environment and flags into the bound fields. INVALID_ARGUMENT for an unknown key,
  // a malformed value or a failed check; NOT_FOUND for a config file that does not exist. The
  // message is one line that names the key and its source.
  absl::Status Load(int argc, const char* const* argv,
                    const Environment& env = ProcessEnvironment());
  // Same, with the file given directly (empty: none) and no flags; for tests and tools.
  absl::Status LoadFile(const std::string& path, const Environment& env = {});

  // True when --help was on the command line; print Usage() and exit 0.
  bool help_requested() const { return help_requested_; }
  // Every key with its type, default, environment variable and help text.
  std::string Usage() const;
  // The effective config, one `key = value  # source` line per key, secrets redacted.
  std::string Dump() const;
  // Where `key` got its value; kDefault for unknown keys.
  Source SourceOf(std::string_view key) const;

  // The environment variable that overrides `key`: "grpc.port" → "GREENLOOP_GRPC_PORT".
  static std::string EnvName(std::string_view key);

 private:
  struct Entry {
    std::string key;
    std::string help;
    std::string type;  // for Usage(): "string", "int", "duration", ...
    KeyOptions options;
    // Parses one scalar (or comma-separated list) and stores it; the error says what was wrong
    // with the value, without naming the key (the caller adds key and origin).
    std::function<absl::Status(std::string_view)> parse;
    // Stores a YAML sequence; null for scalar keys.
    std::function<absl::Status(const std::vector<std::string>&)> parse_list;
    std::function<std::string()> print;
    std::string default_text;
    Source source = Source::kDefault;
  };
  Entry& AddEntry(std::string key, std::string help, KeyOptions options);
  absl::Status LoadYaml(const std::string& path);
  absl::Status LoadFromEnvironment(Entry& entry, const Environment& env);
  absl::Status Set(Entry& entry, std::string_view value, Source source, std::string_view origin);
  Entry* Find(std::string_view key);
  std::string Suggest(std::string_view key) const;

  std::string program_;
  std::vector<Entry> entries_;
  std::vector<std::function<absl::Status()>> checks_;
  bool help_requested_ = false;
};

}  // namespace greenloop::config
