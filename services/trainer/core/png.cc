#include "services/trainer/core/png.h"

#include <zlib.h>

#include <cstdlib>
#include <vector>

namespace greenloop::trainer {
namespace {

void Put32(std::string& out, std::uint32_t v) {
  out += static_cast<char>((v >> 24) & 0xFF);
  out += static_cast<char>((v >> 16) & 0xFF);
  out += static_cast<char>((v >> 8) & 0xFF);
  out += static_cast<char>(v & 0xFF);
}

void Chunk(std::string& out, const char type[4], const std::string& data) {
  Put32(out, static_cast<std::uint32_t>(data.size()));
  std::string typed(type, 4);
  typed += data;
  out += typed;
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(typed.data()), static_cast<uInt>(typed.size()));
  Put32(out, static_cast<std::uint32_t>(crc));
}

}  // namespace

std::string EncodeGreyscalePng(std::span<const std::uint8_t> pixels, int rows, int cols,
                               int scale) {
  if (rows <= 0 || cols <= 0 || scale <= 0 ||
      pixels.size() != static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols)) {
    std::abort();
  }
  const int width = cols * scale;
  const int height = rows * scale;
  // Filter type 0 (none) before each row.
  std::vector<std::uint8_t> raw;
  raw.reserve(static_cast<std::size_t>(height) * (static_cast<std::size_t>(width) + 1));
  for (int y = 0; y < height; ++y) {
    raw.push_back(0);
    const std::size_t row = static_cast<std::size_t>(y / scale) * static_cast<std::size_t>(cols);
    for (int x = 0; x < width; ++x)
      raw.push_back(pixels[row + static_cast<std::size_t>(x / scale)]);
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(packed_size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size, raw.data(),
                static_cast<uLong>(raw.size()), Z_BEST_COMPRESSION) != Z_OK) {
    std::abort();  // only fails on out-of-memory or a too small buffer, neither possible here
  }
  packed.resize(packed_size);

  std::string out("\x89PNG\r\n\x1a\n", 8);
  std::string header;
  Put32(header, static_cast<std::uint32_t>(width));
  Put32(header, static_cast<std::uint32_t>(height));
  header += static_cast<char>(8);  // bit depth
  header += static_cast<char>(0);  // colour type: greyscale
  header += static_cast<char>(0);  // compression
  header += static_cast<char>(0);  // filter
  header += static_cast<char>(0);  // no interlace
  Chunk(out, "IHDR", header);
  Chunk(out, "IDAT", packed);
  Chunk(out, "IEND", "");
  return out;
}

}  // namespace greenloop::trainer
