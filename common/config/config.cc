#include "common/config/config.h"

#include <fmt/format.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>

#include "absl/status/statusor.h"

extern char** environ;

namespace greenloop::config {
namespace {

constexpr std::string_view kEnvPrefix = "GREENLOOP_";
constexpr std::string_view kConfigEnv = "GREENLOOP_CONFIG";

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool ValidKey(std::string_view key) {
  if (key.empty() || key.front() == '.' || key.back() == '.') return false;
  char prev = '.';
  for (const char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
    if (!ok || (c == '.' && prev == '.')) return false;
    prev = c;
  }
  return true;
}

absl::Status CheckRange(double v, const KeyOptions& o, std::string_view shown) {
  if ((o.min && v < *o.min) || (o.max && v > *o.max)) {
    std::string range = fmt::format("[{}, {}]", o.min ? fmt::format("{}", *o.min) : "-inf",
                                    o.max ? fmt::format("{}", *o.max) : "inf");
    return absl::InvalidArgumentError(fmt::format("{} is out of range {}", shown, range));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::int64_t> ParseInt(std::string_view text) {
  text = Trim(text);
  std::int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return absl::InvalidArgumentError(fmt::format("'{}' is not an integer", text));
  }
  return v;
}

absl::StatusOr<double> ParseDouble(std::string_view text) {
  text = Trim(text);
  double v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return absl::InvalidArgumentError(fmt::format("'{}' is not a number", text));
  }
  return v;
}

absl::StatusOr<bool> ParseBool(std::string_view text) {
  std::string t(Trim(text));
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "true" || t == "1" || t == "yes" || t == "on") return true;
  if (t == "false" || t == "0" || t == "no" || t == "off") return false;
  return absl::InvalidArgumentError(
      fmt::format("'{}' is not a boolean (true/false, yes/no, on/off, 1/0)", text));
}

absl::StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  text = Trim(text);
  std::size_t unit_at = 0;
  while (unit_at < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[unit_at])) || text[unit_at] == '.')) {
    ++unit_at;
  }
  const std::string_view number = text.substr(0, unit_at);
  const std::string_view unit = text.substr(unit_at);
  double scale_ms = 0;
  if (unit == "ms") {
    scale_ms = 1;
  } else if (unit == "s") {
    scale_ms = 1000;
  } else if (unit == "m") {
    scale_ms = 60'000;
  } else if (unit == "h") {
    scale_ms = 3'600'000;
  }
  double v = 0;
  const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
  if (number.empty() || scale_ms == 0 || ec != std::errc() ||
      ptr != number.data() + number.size()) {
    return absl::InvalidArgumentError(
        fmt::format("'{}' is not a duration (a number with a unit: 250ms, 5s, 2m, 1h)", text));
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(v * scale_ms + 0.5));
}

std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> out;
  if (Trim(text).empty()) return out;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    out.emplace_back(Trim(text.substr(start, comma - start)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string SourceName(Source s) {
  switch (s) {
    case Source::kDefault:
      return "default";
    case Source::kFile:
      return "file";
    case Source::kEnvironment:
      return "env";
    case Source::kFlag:
      return "flag";
  }
  return "?";
}

std::string FormatDuration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return fmt::format("{}h", ms / 3'600'000);
  if (ms != 0 && ms % 60'000 == 0) return fmt::format("{}m", ms / 60'000);
  if (ms != 0 && ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

}  // namespace

std::string DefaultNodeName() {
  char name[256] = {};
  std::string host = ::gethostname(name, sizeof name - 1) == 0 ? name : "localhost";
  host = host.substr(0, host.find('.'));
  std::string node;
  for (char c : host) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    node += (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '-';
  }
  while (!node.empty() && node.front() == '-') node.erase(0, 1);
  node = node.substr(0, 63);
  return node.empty() ? "node" : node;
}

Environment ProcessEnvironment() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

Schema::Schema(std::string program) : program_(std::move(program)) {}

std::string Schema::EnvName(std::string_view key) {
  std::string out(kEnvPrefix);
  for (const char c : key) {
    out.push_back(c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return out;
}

Schema::Entry& Schema::AddEntry(std::string key, std::string help, KeyOptions options) {
  if (!ValidKey(key) || Find(key) != nullptr) {
    // A programming error in the binary, not bad input: crash loudly.
    std::fprintf(stderr, "config: key '%s' is malformed or bound twice\n", key.c_str());
    std::abort();
  }
  Entry& e = entries_.emplace_back();
  e.key = std::move(key);
  e.help = std::move(help);
  e.options = std::move(options);
  return e;
}

Schema& Schema::Add(std::string key, std::string* field, std::string help, KeyOptions options) {
  Entry& e = AddEntry(std::move(key), std::move(help), std::move(options));
  e.type = "string";
  const auto o = std::make_shared<const KeyOptions>(e.options);
  e.parse = [field, o](std::string_view text) {
    if (!o->one_of.empty() &&
        std::find(o->one_of.begin(), o->one_of.end(), text) == o->one_of.end()) {
      return absl::InvalidArgumentError(
          fmt::format("'{}' is not one of: {}", text, fmt::join(o->one_of, ", ")));
    }
    *field = std::string(text);
    return absl::OkStatus();
  };
  e.print = [field] { return *field; };
  e.default_text = *field;
  return *this;
}

Schema& Schema::Add(std::string key, bool* field, std::string help, KeyOptions options) {
  Entry& e = AddEntry(std::move(key), std::move(help), std::move(options));
  e.type = "bool";
  e.parse = [field](std::string_view text) {
    absl::StatusOr<bool> v = ParseBool(text);
    if (!v.ok()) return v.status();
    *field = *v;
    return absl::OkStatus();
  };
  e.print = [field] { return std::string(*field ? "true" : "false"); };
  e.default_text = e.print();
  return *this;
}

Schema& Schema::Add(std::string key, std::int64_t* field, std::string help, KeyOptions options) {
  Entry& e = AddEntry(std::move(key), std::move(help), std::move(options));
  e.type = "int";
  const auto o = std::make_shared<const KeyOptions>(e.options);
  e.parse = [field, o](std::string_view text) {
    absl::StatusOr<std::int64_t> v = ParseInt(text);
    if (!v.ok()) return v.status();
    if (absl::Status s = CheckRange(static_cast<double>(*v), *o, fmt::format("{}", *v)); !s.ok()) {
      return s;
    }
    *field = *v;
    return absl::OkStatus();
  };
  e.print = [field] { return fmt::format("{}", *field); };
  e.default_text = e.print();
  return *this;
}

Schema& Schema::Add(std::string key, int* field, std::string help, KeyOptions options) {
  Entry& e = AddEntry(std::move(key), std::move(help), std::move(options));
  e.type = "int";
  const auto o = std::make_shared<const KeyOptions>(e.options);
  e.parse = [field, o](std::string_view text) {
    absl::StatusOr<std::int64_t> v = ParseInt(text);
    if (!v.ok()) return v.status();
    KeyOptions bounded = *o;
    if (!bounded.min) bounded.min = static_cast<double>(std::numeric_limits<int>::min());
    if (!bounded.max) bounded.max = static_cast<double>(std::numeric_limits<int>::max());
    if (absl::Status s = CheckRange(static_cast<double>(*v), bounded, fmt::format("{}", *v));
        !s.ok()) {
      return s;
    }
    *field = static_cast<int>(*v);
    return absl::OkStatus();
  };
  e.print = [field] { return fmt::format("{}", *field); };
  e.default_text = e.print();
  return *this;
}

Schema& Schema::Add(std::string key, double* field, std::string help, KeyOptions options) {
  Entry& e = AddEntry(std::move(key), std::move(help), std::move(options));
  e.type = "number";
  const auto o = std::make_shared<const KeyOptions>(e.options);
  e.parse = [field, o](std::string_view text) {
    absl::StatusOr<double> v = ParseDouble(text);
    if (!v.ok()) return v.status();
    if (absl::Status s = CheckRange(*v, *o, fmt::format("{}", *v)); !s.ok()) return s;
    *field = *v;
    return absl::OkStatus();
  };
  e.print = [field] { return fmt::format("{}", *field); };
  e.default_text = e.print();
  return *this;
}

Schema& Schema::Add(std::string key, std::chrono::milliseconds* field, std::string help,
                    KeyOptions options) {
  Entry& e = AddEntry(std::move(key), std::move(help), std::move(options));
  e.type = "duration";
  const auto o = std::make_shared<const KeyOptions>(e.options);
  e.parse = [field, o](std::string_view text) {
    absl::StatusOr<std::chrono::milliseconds> v = ParseDuration(text);
    if (!v.ok()) return v.status();
    if ((o->min && v->count() < *o->min) || (o->max && v->count() > *o->max)) {
      return absl::InvalidArgumentError(fmt::format(
          "{} is out of range [{}, {}]", FormatDuration(*v),
          o->min ? FormatDuration(std::chrono::milliseconds(static_cast<std::int64_t>(*o->min)))
                 : "0ms",
          o->max ? FormatDuration(std::chrono::milliseconds(static_cast<std::int64_t>(*o->max)))
                 : "inf"));
    }
    *field = *v;
    return absl::OkStatus();
  };
  e.print = [field] { return FormatDuration(*field); };
  e.default_text = e.print();
  return *this;
}

Schema& Schema::Add(std::string key, std::vector<std::string>* field, std::string help,
                    KeyOptions options) {
  Entry& e = AddEntry(std::move(key), std::move(help), std::move(options));
  e.type = "list";
  e.parse_list = [field](const std::vector<std::string>& items) {
    *field = items;
    return absl::OkStatus();
  };
  e.parse = [field](std::string_view text) {
    *field = SplitList(text);
    return absl::OkStatus();
  };
  e.print = [field] { return fmt::format("{}", fmt::join(*field, ",")); };
  e.default_text = e.print();
  return *this;
}

Schema& Schema::Check(std::function<absl::Status()> check) {
  checks_.push_back(std::move(check));
  return *this;
}

Schema::Entry* Schema::Find(std::string_view key) {
  for (Entry& e : entries_) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

std::string Schema::Suggest(std::string_view key) const {
  const Entry* best = nullptr;
  std::size_t best_distance = 0;
  for (const Entry& e : entries_) {
    const std::size_t d = EditDistance(key, e.key);
    if (best == nullptr || d < best_distance) {
      best = &e;
      best_distance = d;
    }
  }
  if (best == nullptr || best_distance > std::max<std::size_t>(2, key.size() / 3)) return "";
  return fmt::format(" (did you mean '{}'?)", best->key);
}

absl::Status Schema::Set(Entry& entry, std::string_view value, Source source,
                         std::string_view origin) {
  if (absl::Status s = entry.parse(value); !s.ok()) {
    return absl::InvalidArgumentError(fmt::format(
        "{}: {}: {}", origin, entry.key,
        entry.options.secret ? "malformed value (secret, not shown)" : std::string(s.message())));
  }
  entry.source = source;
  return absl::OkStatus();
}

absl::Status Schema::LoadYaml(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(fmt::format("config file '{}' does not exist", path));
  }
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(fmt::format("{}:{}:{}: not valid YAML: {}", path,
                                                  e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(fmt::format("{}: cannot read: {}", path, e.what()));
  }
  if (root.IsNull()) return absl::OkStatus();  // An empty file sets nothing.
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: the top level must be a map of keys, not a {}", path,
                    root.IsSequence() ? "list" : "single value"));
  }

  // Walks nested maps, joining keys with dots, and sets each leaf.
  std::function<absl::Status(const YAML::Node&, const std::string&)> walk =
      [&](const YAML::Node& node, const std::string& prefix) -> absl::Status {
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) {  // YAML allows a list or map as a key (`? [a]: 1`); we do not
        return absl::InvalidArgumentError(fmt::format("{}:{}: keys must be plain names, not a {}",
                                                      path, kv.first.Mark().line + 1,
                                                      kv.first.IsNull()  ? "null"
                                                      : kv.first.IsMap() ? "map"
                                                                         : "list"));
      }
      const std::string name = kv.first.Scalar();
      const std::string key = prefix.empty() ? name : prefix + "." + name;
      const YAML::Node& value = kv.second;
      const std::string origin = fmt::format("{}:{}", path, kv.first.Mark().line + 1);
      Entry* entry = Find(key);
      if (value.IsMap() && entry == nullptr) {
        if (absl::Status s = walk(value, key); !s.ok()) return s;
        continue;
      }
      if (entry == nullptr) {
        return absl::InvalidArgumentError(
            fmt::format("{}: unknown key '{}'{}", origin, key, Suggest(key)));
      }
      if (value.IsSequence()) {
        if (!entry->parse_list) {
          return absl::InvalidArgumentError(
              fmt::format("{}: {}: expects a single {}, not a list", origin, key, entry->type));
        }
        std::vector<std::string> items;
        for (const auto& item : value) {
          if (!item.IsScalar()) {
            return absl::InvalidArgumentError(
                fmt::format("{}: {}: list items must be plain values", origin, key));
          }
          items.push_back(item.Scalar());
        }
        if (absl::Status s = entry->parse_list(items); !s.ok()) return s;
        entry->source = Source::kFile;
        continue;
      }
      if (value.IsMap()) {
        return absl::InvalidArgumentError(
            fmt::format("{}: {}: expects a {}, not a map", origin, key, entry->type));
      }
      if (value.IsNull() && entry->type != "string" && entry->type != "list") {
        return absl::InvalidArgumentError(
            fmt::format("{}: {}: has no value (expects a {})", origin, key, entry->type));
      }
      if (absl::Status s = Set(*entry, value.IsNull() ? "" : value.Scalar(), Source::kFile, origin);
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  };
  return walk(root, "");
}

absl::Status Schema::LoadFile(const std::string& path, const Environment& env) {
  const char* argv[] = {program_.c_str()};
  Environment with_file = env;
  if (!path.empty()) with_file[std::string(kConfigEnv)] = path;
  return Load(1, argv, with_file);
}

// GREENLOOP_<KEY>, or GREENLOOP_<KEY>_FILE naming a file that holds the value (a Secret mounted
// as a file keeps it out of the process environment); one trailing newline is dropped.
absl::Status Schema::LoadFromEnvironment(Entry& entry, const Environment& env) {
  const std::string name = EnvName(entry.key);
  const std::string file_name = name + "_FILE";
  const auto direct = env.find(name);
  const auto from_file = env.find(file_name);
  if (direct != env.end() && from_file != env.end()) {
    return absl::InvalidArgumentError(
        fmt::format("environment sets both {} and {}: keep one", name, file_name));
  }
  if (direct != env.end()) {
    return Set(entry, direct->second, Source::kEnvironment, "environment " + name);
  }
  if (from_file == env.end()) return absl::OkStatus();
  const std::string& path = from_file->second;
  std::ifstream in(path, std::ios::binary);
  std::string value((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    return absl::InvalidArgumentError(
        fmt::format("environment {}: cannot read '{}' for {}", file_name, path, entry.key));
  }
  if (value.ends_with("\r\n")) {
    value.resize(value.size() - 2);
  } else if (value.ends_with('\n')) {
    value.pop_back();
  }
  return Set(entry, value, Source::kEnvironment,
             fmt::format("environment {} ('{}')", file_name, path));
}

absl::Status Schema::Load(int argc, const char* const* argv, const Environment& env) {
  // Flags are parsed first (but applied last) because --config names the file.
  std::string config_path;
  if (auto it = env.find(kConfigEnv); it != env.end()) config_path = it->second;
  std::vector<std::pair<Entry*, std::string>> flag_values;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg(argv[i]);
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      continue;
    }
    if (!arg.starts_with("--") || arg.size() == 2) {
      return absl::InvalidArgumentError(
          fmt::format("unexpected argument '{}' (flags look like --key=value; see --help)", arg));
    }
    arg.remove_prefix(2);
    const std::size_t eq = arg.find('=');
    const std::string name(arg.substr(0, eq));
    std::optional<std::string> value;
    if (eq != std::string_view::npos) value = std::string(arg.substr(eq + 1));
    if (name == "config") {
      if (!value) {
        if (i + 1 >= argc) return absl::InvalidArgumentError("--config needs a file path");
        value = argv[++i];
      }
      config_path = *value;
      continue;
    }
    Entry* entry = Find(name);
    if (entry == nullptr) {
      return absl::InvalidArgumentError(fmt::format("unknown flag '--{}'{}", name, Suggest(name)));
    }
    if (!value) {
      const bool next_is_value = i + 1 < argc && !std::string_view(argv[i + 1]).starts_with("--");
      if (entry->type == "bool" && !next_is_value) {
        value = "true";
      } else if (!next_is_value) {
        return absl::InvalidArgumentError(fmt::format("--{} needs a value", name));
      } else {
        value = argv[++i];
      }
    }
    flag_values.emplace_back(entry, std::move(*value));
  }

  if (!config_path.empty()) {
    if (absl::Status s = LoadYaml(config_path); !s.ok()) return s;
  }
  for (Entry& entry : entries_) {
    if (absl::Status s = LoadFromEnvironment(entry, env); !s.ok()) return s;
  }
  for (auto& [entry, value] : flag_values) {
    if (absl::Status s = Set(*entry, value, Source::kFlag, "flag --" + entry->key); !s.ok()) {
      return s;
    }
  }
  // With --help the caller prints usage and exits; a missing required key is no error then.
  if (help_requested_) return absl::OkStatus();
  for (const auto& check : checks_) {
    if (absl::Status s = check(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string Schema::Usage() const {
  std::string out = fmt::format(
      "usage: {} [--config FILE] [--key=value ...]\n\n"
      "Each key can be set in the YAML file, by its environment variable, or by its flag\n"
      "(later wins). The variable's name with _FILE appended names a file holding the value\n"
      "instead (a mounted Secret).\n\n",
      program_);
  for (const Entry& e : entries_) {
    out += fmt::format("  --{} ({}, default {})\n      {}  [env {}]\n", e.key, e.type,
                       e.options.secret         ? "<secret>"
                       : e.default_text.empty() ? "\"\""
                                                : e.default_text,
                       e.help, EnvName(e.key));
  }
  return out;
}

std::string Schema::Dump() const {
  std::string out;
  for (const Entry& e : entries_) {
    out += fmt::format("{} = {}  # {}\n", e.key, e.options.secret ? "<redacted>" : e.print(),
                       SourceName(e.source));
  }
  return out;
}

Source Schema::SourceOf(std::string_view key) const {
  for (const Entry& e : entries_) {
    if (e.key == key) return e.source;
  }
  return Source::kDefault;
}

}  // namespace greenloop::config
