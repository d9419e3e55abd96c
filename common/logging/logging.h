// Structured logs for every greenloop binary.
//
// One line per event: a message plus key=value fields, written as JSON (one object per line, for
// log shippers) or as text (for people at a terminal). `main` calls Init() once with the format and
// level from the service's config; library code only calls Info()/Warn()/Error()/Debug().
//
//   logging::Init({.service = "energy", .format = logging::Format::kJson});
//   logging::Warn("meter unreadable, falling back to estimator",
//                 {{"zone", "intel-rapl:0"}, {"error", status.ToString()}});
//
// prints
//   {"ts":"2026-11-22T21:57:55.123Z","level":"warn","service":"energy",
//    "msg":"meter unreadable, falling back to estimator","zone":"intel-rapl:0","error":"..."}
//
// Thread-safety: all functions are thread-safe. Init() replaces spdlog's process-wide default
// logger (logging is the one process-wide thing greenloop has); call it before starting threads.
#pragma once

#include <spdlog/common.h>
#include <spdlog/sinks/sink.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/statusor.h"

namespace greenloop::logging {

enum class Format { kText, kJson };
enum class Level { kDebug, kInfo, kWarn, kError };

struct Options {
  std::string service = "greenloop";
  Format format = Format::kText;
  Level level = Level::kInfo;
  // Where lines go; stderr when null. Tests pass an ostream sink.
  std::shared_ptr<spdlog::sinks::sink> sink;
};

// Parses "text"/"json" (case-sensitive); INVALID_ARGUMENT naming the accepted values otherwise.
absl::StatusOr<Format> ParseFormat(std::string_view text);
// Parses "debug"/"info"/"warn"/"error"; INVALID_ARGUMENT naming the accepted values otherwise.
absl::StatusOr<Level> ParseLevel(std::string_view text);

// Installs the process-wide logger. Safe to call again (tests do); the last call wins.
void Init(const Options& options);

// One key=value pair of a log line. Strings are quoted and escaped; numbers and bools are not.
class Field final {
 public:
  Field(std::string_view key, std::string_view value) : key_(key), value_(value), quoted_(true) {}
  Field(std::string_view key, const char* value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, const std::string& value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, bool value)
      : key_(key), value_(value ? "true" : "false"), quoted_(false) {}
  template <typename T>
  requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) Field(std::string_view key, T value)
      : key_(key), value_(FormatNumber(value)), quoted_(false) {}

  std::string_view key() const { return key_; }
  std::string_view value() const { return value_; }
  bool quoted() const { return quoted_; }

 private:
  static std::string FormatNumber(double value);
  static std::string FormatNumber(std::int64_t value) { return std::to_string(value); }
  static std::string FormatNumber(std::uint64_t value) { return std::to_string(value); }
  template <typename T>
  static std::string FormatNumber(T value) {
    if constexpr (std::is_floating_point_v<T>) {
      return FormatNumber(static_cast<double>(value));
    } else if constexpr (std::is_signed_v<T>) {
      return FormatNumber(static_cast<std::int64_t>(value));
    } else {
      return FormatNumber(static_cast<std::uint64_t>(value));
    }
  }

  std::string_view key_;
  std::string value_;
  bool quoted_;
};

using Fields = std::initializer_list<Field>;

// Writes one line at `level` if the configured level lets it through.
void Log(Level level, std::string_view message, Fields fields = {});

inline void Debug(std::string_view message, Fields fields = {}) {
  Log(Level::kDebug, message, fields);
}
inline void Info(std::string_view message, Fields fields = {}) {
  Log(Level::kInfo, message, fields);
}
inline void Warn(std::string_view message, Fields fields = {}) {
  Log(Level::kWarn, message, fields);
}
inline void Error(std::string_view message, Fields fields = {}) {
  Log(Level::kError, message, fields);
}

}  // namespace greenloop::logging
