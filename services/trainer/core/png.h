// PNG encoding of greyscale images, for the display payloads raters see (feedback.proto Payload).
//
// A Fashion-MNIST image is 28×28; raters see it scaled up with nearest-neighbour pixels so that
// the garment is recognisable on a laptop screen. Written with zlib directly (the PNG format is a
// zlib stream in CRC-checked chunks), so no image library is needed.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace greenloop::trainer {

// Encodes a rows×cols 8-bit greyscale image (row-major, 0 black) as a PNG, each pixel drawn as a
// scale×scale block. Crashes on a pixel count that does not match rows × cols (a programming
// error).
std::string EncodeGreyscalePng(std::span<const std::uint8_t> pixels, int rows, int cols,
                               int scale = 4);

}  // namespace greenloop::trainer
