#include "tools/greenloop/experiment/oracle.h"

#include <fmt/format.h>
#include <zlib.h>

#include <cctype>
#include <cstdlib>

#include "services/trainer/core/datasets.h"

namespace greenloop::experiment {
namespace {

std::uint32_t Get32(const std::string& s, std::size_t at) {
  return (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at])) << 24) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 1])) << 16) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 2])) << 8) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 3]));
}

// An image's key: FNV-1a over its pixels without the four 4 × 4 corner squares, where a decoy
// (RunConfig.decoy) may sit, on images of at least 12 × 12. A person recognises the garment with or
// without the square.
std::uint64_t ImageKey(const std::uint8_t* pixels, int rows, int cols) {
  const int kCorner = rows >= 12 && cols >= 12 ? 4 : 0;
  std::uint64_t h = 1469598103934665603ULL;
  for (int y = 0; y < rows; ++y) {
    for (int x = 0; x < cols; ++x) {
      const bool corner =
          (y < kCorner || y >= rows - kCorner) && (x < kCorner || x >= cols - kCorner);
      if (corner) continue;
      h ^= pixels[static_cast<std::size_t>(y * cols + x)];
      h *= 1099511628211ULL;
    }
  }
  return h;
}

std::string_view BodyOf(std::string_view mail) {
  for (std::string_view sep : {"\r\n\r\n", "\n\n"}) {
    if (auto pos = mail.find(sep); pos != std::string_view::npos) {
      return mail.substr(pos + sep.size());
    }
  }
  return {};
}

}  // namespace

absl::StatusOr<GreyImage> DecodeGreyscalePng(const std::string& png) {
  if (png.size() < 8 || png.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)) != 0) {
    return absl::InvalidArgumentError("not a PNG");
  }
  GreyImage img;
  std::string idat;
  std::size_t at = 8;
  while (at + 12 <= png.size()) {
    const std::uint32_t len = Get32(png, at);
    const std::string type = png.substr(at + 4, 4);
    if (at + 12 + len > png.size()) return absl::InvalidArgumentError("truncated PNG chunk");
    const std::string data = png.substr(at + 8, len);
    if (type == "IHDR") {
      if (len < 13) return absl::InvalidArgumentError("short IHDR");
      img.width = static_cast<int>(Get32(data, 0));
      img.height = static_cast<int>(Get32(data, 4));
      if (data[8] != 8 || data[9] != 0 || data[12] != 0) {
        return absl::InvalidArgumentError("only 8-bit greyscale non-interlaced PNGs are read");
      }
    } else if (type == "IDAT") {
      idat += data;
    } else if (type == "IEND") {
      break;
    }
    at += 12 + len;
  }
  if (img.width <= 0 || img.height <= 0 || img.width > 4096 || img.height > 4096) {
    return absl::InvalidArgumentError("bad PNG size");
  }
  const std::size_t w = static_cast<std::size_t>(img.width);
  const std::size_t h = static_cast<std::size_t>(img.height);
  std::vector<std::uint8_t> raw(h * (w + 1));
  uLongf raw_size = static_cast<uLongf>(raw.size());
  if (uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(idat.data()),
                 static_cast<uLong>(idat.size())) != Z_OK ||
      raw_size != raw.size()) {
    return absl::InvalidArgumentError("PNG data does not inflate to its size");
  }
  img.pixels.assign(w * h, 0);
  for (std::size_t y = 0; y < h; ++y) {
    const std::uint8_t filter = raw[y * (w + 1)];
    const std::uint8_t* in = &raw[y * (w + 1) + 1];
    std::uint8_t* out = &img.pixels[y * w];
    const std::uint8_t* up = y > 0 ? &img.pixels[(y - 1) * w] : nullptr;
    for (std::size_t x = 0; x < w; ++x) {
      const int a = x > 0 ? out[x - 1] : 0;
      const int b = up != nullptr ? up[x] : 0;
      const int c = (x > 0 && up != nullptr) ? up[x - 1] : 0;
      int pred = 0;
      switch (filter) {
        case 0:
          pred = 0;
          break;
        case 1:
          pred = a;
          break;
        case 2:
          pred = b;
          break;
        case 3:
          pred = (a + b) / 2;
          break;
        case 4: {
          const int p = a + b - c;
          const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default:
          return absl::InvalidArgumentError(fmt::format("unknown PNG filter {}", filter));
      }
      out[x] = static_cast<std::uint8_t>((in[x] + pred) & 0xFF);
    }
  }
  return img;
}

absl::StatusOr<std::unique_ptr<ImageOracle>> ImageOracle::LoadFashionMnist(const std::string& dir) {
  // The trainer's reader: the crowd's oracle reads the dataset exactly as training does.
  absl::StatusOr<trainer::RawImages> raw = trainer::ReadFashionMnist(dir);
  if (!raw.ok()) return raw.status();
  const std::size_t px = static_cast<std::size_t>(raw->rows) * static_cast<std::size_t>(raw->cols);
  const std::size_t n = raw->train_labels.size();
  std::vector<std::vector<std::uint8_t>> imgs(n);
  std::vector<std::uint32_t> labels(n);
  for (std::size_t i = 0; i < n; ++i) {
    imgs[i].assign(raw->train_pixels.begin() + static_cast<std::ptrdiff_t>(i * px),
                   raw->train_pixels.begin() + static_cast<std::ptrdiff_t>((i + 1) * px));
    labels[i] = static_cast<std::uint32_t>(raw->train_labels[i]);
  }
  return std::make_unique<ImageOracle>(raw->rows, raw->cols, imgs, labels);
}

ImageOracle::ImageOracle(int rows, int cols, const std::vector<std::vector<std::uint8_t>>& images,
                         const std::vector<std::uint32_t>& labels)
    : rows_(rows), cols_(cols) {
  for (std::size_t i = 0; i < images.size() && i < labels.size(); ++i) {
    // The first of identical images wins (Fashion-MNIST has a handful of duplicates).
    if (images[i].size() != static_cast<std::size_t>(rows * cols)) continue;
    labels_.emplace(ImageKey(images[i].data(), rows, cols), labels[i]);
  }
}

std::optional<std::uint32_t> ImageOracle::TrueLabel(const v1::Payload& payload) const {
  if (!payload.has_png()) return std::nullopt;
  absl::StatusOr<GreyImage> img = DecodeGreyscalePng(payload.png());
  if (!img.ok() || img->width % cols_ != 0 || img->height % rows_ != 0) return std::nullopt;
  const int sx = img->width / cols_;
  const int sy = img->height / rows_;
  std::vector<std::uint8_t> small(static_cast<std::size_t>(rows_ * cols_));
  for (int y = 0; y < rows_; ++y) {
    for (int x = 0; x < cols_; ++x) {
      small[static_cast<std::size_t>(y * cols_ + x)] =
          img->pixels[static_cast<std::size_t>(y * sy) * static_cast<std::size_t>(img->width) +
                      static_cast<std::size_t>(x * sx)];
    }
  }
  auto it = labels_.find(ImageKey(small.data(), rows_, cols_));
  if (it == labels_.end()) return std::nullopt;
  return it->second;
}

std::string TextKey(std::string_view body) {
  std::string key;
  for (char ch : body) {
    if (std::isalnum(static_cast<unsigned char>(ch)) != 0) {
      key += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (key.size() == 160) break;
    }
  }
  return key;
}

absl::StatusOr<std::unique_ptr<TextOracle>> TextOracle::LoadSpamAssassin(const std::string& dir) {
  absl::StatusOr<std::vector<trainer::RawMail>> mails = trainer::ReadSpamAssassin(dir);
  if (!mails.ok()) return mails.status();
  auto oracle = std::make_unique<TextOracle>();
  for (const trainer::RawMail& mail : *mails) {
    oracle->Add(std::string(BodyOf(mail.text)), static_cast<std::uint32_t>(mail.label));
  }
  if (oracle->size() == 0) return absl::NotFoundError(fmt::format("{}: no mails", dir));
  return oracle;
}

void TextOracle::Add(const std::string& body, std::uint32_t label) {
  const std::string key = TextKey(body);
  if (key.size() < 20) return;  // too short to recognise reliably
  auto [it, fresh] = labels_.emplace(key, label);
  if (!fresh && it->second != label) it->second = 2;  // ambiguous: both labels seen
}

std::optional<std::uint32_t> TextOracle::TrueLabel(const v1::Payload& payload) const {
  if (!payload.has_text()) return std::nullopt;
  auto it = labels_.find(TextKey(BodyOf(payload.text())));
  if (it == labels_.end() || it->second > 1) return std::nullopt;
  return it->second;
}

}  // namespace greenloop::experiment
