#include "common/logging/logging.h"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cmath>
#include <cstdio>

namespace greenloop::logging {
namespace {

// The format lines are rendered in; set by Init(). Read on every Log() call.
std::atomic<Format> g_format{Format::kText};

spdlog::level::level_enum ToSpdlog(Level level) {
  switch (level) {
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

void AppendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

// Text values are quoted only when a reader could misparse them.
void AppendTextValue(std::string& out, std::string_view s) {
  const bool needs_quotes = s.empty() || s.find_first_of(" \t\n\r\"=\\") != std::string_view::npos;
  if (!needs_quotes) {
    out += s;
    return;
  }
  AppendJsonString(out, s);
}

std::string RenderJson(std::string_view message, Fields fields) {
  std::string out = "\"msg\":";
  AppendJsonString(out, message);
  for (const Field& f : fields) {
    out.push_back(',');
    AppendJsonString(out, f.key());
    out.push_back(':');
    if (f.quoted()) {
      AppendJsonString(out, f.value());
    } else {
      out += f.value();
    }
  }
  return out;
}

std::string RenderText(std::string_view message, Fields fields) {
  std::string out(message);
  for (const Field& f : fields) {
    out += ' ';
    out += f.key();
    out += '=';
    AppendTextValue(out, f.value());
  }
  return out;
}

}  // namespace

std::string Field::FormatNumber(double value) {
  if (!std::isfinite(value))
    return std::isnan(value) ? "\"NaN\"" : (value > 0 ? "\"Inf\"" : "\"-Inf\"");
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", value);
  return buf;
}

absl::StatusOr<Format> ParseFormat(std::string_view text) {
  if (text == "text") return Format::kText;
  if (text == "json") return Format::kJson;
  return absl::InvalidArgumentError(fmt::format("log format '{}' is not one of: text, json", text));
}

absl::StatusOr<Level> ParseLevel(std::string_view text) {
  if (text == "debug") return Level::kDebug;
  if (text == "info") return Level::kInfo;
  if (text == "warn") return Level::kWarn;
  if (text == "error") return Level::kError;
  return absl::InvalidArgumentError(
      fmt::format("log level '{}' is not one of: debug, info, warn, error", text));
}

void Init(const Options& options) {
  auto sink = options.sink ? options.sink : std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(options.service, std::move(sink));
  if (options.format == Format::kJson) {
    std::string service;
    AppendJsonString(service, options.service);
    logger->set_pattern(
        fmt::format(R"({{"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","service":{},%v}})", service),
        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %n: %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(ToSpdlog(options.level));
  logger->flush_on(spdlog::level::warn);
  g_format.store(options.format);
  spdlog::set_default_logger(std::move(logger));
}

void Log(Level level, std::string_view message, Fields fields) {
  const auto spd_level = ToSpdlog(level);
  auto* logger = spdlog::default_logger_raw();
  if (!logger->should_log(spd_level)) return;
  const std::string line =
      g_format.load() == Format::kJson ? RenderJson(message, fields) : RenderText(message, fields);
  logger->log(spd_level, spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace greenloop::logging
