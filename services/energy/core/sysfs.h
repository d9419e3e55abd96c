// Small readers of sysfs and procfs files, with errno mapped to Status codes the meters act on.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace greenloop::energy {

/// Returns the whole content of a (small) file. PERMISSION_DENIED for EACCES/EPERM, NOT_FOUND when
/// the file does not exist (a zone or process that vanished), UNAVAILABLE for other I/O errors.
/// Messages name the path.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path);

/// Returns the unsigned integer a sysfs attribute holds ("123456\n"). Errors as ReadSmallFile, and
/// DATA_LOSS when the content is not a number.
absl::StatusOr<std::uint64_t> ReadUint64File(const std::string& path);

/// Returns the first line of a file without its newline ("package-0"); errors as ReadSmallFile.
absl::StatusOr<std::string> ReadLineFile(const std::string& path);

}  // namespace greenloop::energy
