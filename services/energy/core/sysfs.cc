#include "services/energy/core/sysfs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "fmt/format.h"

namespace greenloop::energy {
namespace {

absl::Status ErrnoStatus(int err, const std::string& path) {
  std::string message = fmt::format("cannot read {}: {}", path, std::strerror(err));
  switch (err) {
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case ENOENT:
    case ENODEV:
    case ENXIO:
    case ESRCH:
      return absl::NotFoundError(message);
    default:
      return absl::UnavailableError(message);
  }
}

}  // namespace

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  // open/read rather than iostreams: sysfs attributes are read often (every interval, per zone) and
  // errno is what tells a permission problem from a vanished zone.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, path);
  std::string content;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return ErrnoStatus(err, path);
    }
    if (n == 0) break;
    content.append(buffer, static_cast<std::size_t>(n));
    if (content.size() > (1u << 20)) break;  // /proc/stat on huge machines stays far below this
  }
  ::close(fd);
  return content;
}

absl::StatusOr<std::uint64_t> ReadUint64File(const std::string& path) {
  absl::StatusOr<std::string> content = ReadSmallFile(path);
  if (!content.ok()) return content.status();
  std::string_view text = *content;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    return absl::DataLossError(fmt::format("{} holds '{}', not an unsigned integer", path, text));
  }
  return value;
}

absl::StatusOr<std::string> ReadLineFile(const std::string& path) {
  absl::StatusOr<std::string> content = ReadSmallFile(path);
  if (!content.ok()) return content.status();
  std::string line = content->substr(0, content->find('\n'));
  return line;
}

}  // namespace greenloop::energy
