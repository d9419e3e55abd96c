// libFuzzer target: the hand-written parsers of files greenloop reads. The first byte picks one:
//   0  an IDX file's bytes (Fashion-MNIST; ParseIdx)
//   1  a flat JSON object (the SpamAssassin package's file list; ParseJsonStringFields)
//   2  a mail to tokenise (TokenizeMail, headers kept or not)
//   3  /proc/<pid>/stat (ParseProcessStat)
//   4  /proc/stat (ParseCpuTimes)
//   5  the energy collector's saved counters (DecodeCounters)
//   6  a PNG payload as the simulated crowd decodes it (DecodeGreyscalePng)
//   7  the PNG encoder's input: rows, cols, scale and pixels (EncodeGreyscalePng), decoded back
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "services/energy/core/collector.h"
#include "services/energy/core/procfs.h"
#include "services/trainer/core/datasets.h"
#include "services/trainer/core/png.h"
#include "tools/greenloop/experiment/oracle.h"

namespace {

void EncodeAndDecode(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return;
  const int rows = 1 + data[0] % 32;
  const int cols = 1 + data[1] % 32;
  const int scale = 1 + data[2] % 4;
  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(rows * cols), 0);
  for (std::size_t i = 0; i < pixels.size() && 3 + i < size; ++i) pixels[i] = data[3 + i];
  const std::string png = greenloop::trainer::EncodeGreyscalePng(pixels, rows, cols, scale);
  absl::StatusOr<greenloop::experiment::GreyImage> back =
      greenloop::experiment::DecodeGreyscalePng(png);
  // What the trainer encodes, the crowd must read back exactly.
  if (!back.ok() || back->width != cols * scale || back->height != rows * scale) __builtin_trap();
  for (int y = 0; y < back->height; ++y) {
    for (int x = 0; x < back->width; ++x) {
      const std::size_t at = static_cast<std::size_t>((y / scale) * cols + x / scale);
      if (back->pixels[static_cast<std::size_t>(y * back->width + x)] != pixels[at]) {
        __builtin_trap();
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t* body = data + 1;
  const std::size_t n = size - 1;
  const std::string_view text(reinterpret_cast<const char*>(body), n);
  switch (data[0] % 8) {
    case 0:
      (void)greenloop::trainer::ParseIdx(std::span<const std::uint8_t>(body, n), "fuzz");
      break;
    case 1:
      (void)greenloop::trainer::ParseJsonStringFields(text);
      break;
    case 2:
      (void)greenloop::trainer::TokenizeMail(text, n % 2 == 0);
      break;
    case 3:
      (void)greenloop::energy::ParseProcessStat(text);
      break;
    case 4:
      (void)greenloop::energy::ParseCpuTimes(text);
      break;
    case 5: {
      greenloop::energy::SavedState state;
      (void)greenloop::energy::DecodeCounters(text, state);
      break;
    }
    case 6:
      (void)greenloop::experiment::DecodeGreyscalePng(std::string(text));
      break;
    default:
      EncodeAndDecode(body, n);
  }
  return 0;
}
