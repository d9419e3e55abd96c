#include "services/trainer/core/checkpoint.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "services/trainer/core/trainer.h"
#include "services/trainer/core/worker_policy.h"

namespace greenloop::trainer {
namespace {

namespace fs = std::filesystem;

absl::Status WriteFileAtomically(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InternalError(fmt::format("cannot write {}", tmp.string()));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) return absl::InternalError(fmt::format("cannot write {}", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    return absl::InternalError(fmt::format("cannot rename {}: {}", tmp.string(), ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(fmt::format("cannot read {}", path.string()));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Writes the model and the optimizer into `dir`. LibTorch throws on I/O errors.
absl::Status SaveTensors(const fs::path& dir, torch::nn::Module& model,
                         torch::optim::Optimizer& optimizer) {
  try {
    torch::serialize::OutputArchive model_archive;
    model.save(model_archive);
    model_archive.save_to((dir / "model.pt").string());
    torch::serialize::OutputArchive optimizer_archive;
    optimizer.save(optimizer_archive);
    optimizer_archive.save_to((dir / "optimizer.pt").string());
  } catch (const std::exception& e) {
    return absl::InternalError(fmt::format("cannot write the model into {}: {}", dir.string(),
                                           std::string(e.what()).substr(0, 200)));
  }
  return absl::OkStatus();
}

absl::Status LoadTensors(const fs::path& dir, torch::nn::Module& model,
                         torch::optim::Optimizer& optimizer) {
  try {
    torch::serialize::InputArchive model_archive;
    model_archive.load_from((dir / "model.pt").string());
    model.load(model_archive);
    torch::serialize::InputArchive optimizer_archive;
    optimizer_archive.load_from((dir / "optimizer.pt").string());
    optimizer.load(optimizer_archive);
  } catch (const std::exception& e) {
    return absl::DataLossError(fmt::format("checkpoint {} has no readable model: {}", dir.string(),
                                           std::string(e.what()).substr(0, 200)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> SaveCheckpoint(const std::string& dir_name, const std::string& name,
                                           torch::nn::Module& model,
                                           torch::optim::Optimizer& optimizer,
                                           const internal::CheckpointState& state) {
  const fs::path dir = dir_name;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  }
  const fs::path tmp = dir / (name + ".tmp");
  const fs::path final_dir = dir / name;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (absl::Status s = SaveTensors(tmp, model, optimizer); !s.ok()) return s;
  if (absl::Status s = WriteFileAtomically(tmp / "state.pb", state.SerializeAsString()); !s.ok()) {
    return s;
  }
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  if (ec) {
    return absl::InternalError(
        fmt::format("cannot publish {}: {}", final_dir.string(), ec.message()));
  }
  if (absl::Status s = WriteFileAtomically(dir / "LATEST", name); !s.ok()) return s;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory() && entry.path().filename() != name) fs::remove_all(entry.path(), ec);
  }
  return final_dir.string();
}

absl::StatusOr<LoadedCheckpoint> LoadLatestCheckpoint(
    const std::string& dir_name, const std::string& run_id, std::uint32_t world_size,
    torch::nn::Module& model, torch::optim::Optimizer& optimizer, const std::string& architecture) {
  const fs::path dir = dir_name;
  absl::StatusOr<std::string> latest = ReadFile(dir / "LATEST");
  if (!latest.ok()) return latest.status();
  if (absl::Status s = CheckCheckpointName(*latest, (dir / "LATEST").string()); !s.ok()) return s;
  const fs::path path = dir / *latest;
  absl::StatusOr<std::string> bytes = ReadFile(path / "state.pb");
  if (!bytes.ok()) {
    return absl::DataLossError(fmt::format("checkpoint {} has no state.pb", path.string()));
  }
  LoadedCheckpoint out;
  out.path = path.string();
  if (!out.state.ParseFromString(*bytes) || out.state.run_id() != run_id) {
    return absl::DataLossError(
        fmt::format("checkpoint {} is not one of run {}", path.string(), run_id));
  }
  if (out.state.world_size() != world_size) {
    return absl::FailedPreconditionError(
        fmt::format("checkpoint {} was written by a run of {} ranks; this one has {}",
                    path.string(), out.state.world_size(), world_size));
  }
  const std::string& written = out.state.architecture();
  if (!architecture.empty() && !written.empty() && written != architecture) {
    return absl::FailedPreconditionError(
        fmt::format("checkpoint {} is of a {}; this run's config asks for a {}", path.string(),
                    written, architecture));
  }
  if (absl::Status s = LoadTensors(path, model, optimizer); !s.ok()) return s;
  return out;
}

std::string RankCheckpointDir(const std::string& checkpoint_dir, const std::string& run_id,
                              std::uint32_t rank) {
  return (fs::path(checkpoint_dir) / run_id / fmt::format("rank-{}", rank)).string();
}

bool HasCheckpoint(const std::string& checkpoint_dir, const std::string& run_id,
                   std::uint32_t rank) {
  if (checkpoint_dir.empty()) return false;
  std::error_code ec;
  return fs::exists(fs::path(RankCheckpointDir(checkpoint_dir, run_id, rank)) / "LATEST", ec);
}

}  // namespace greenloop::trainer
