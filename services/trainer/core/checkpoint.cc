#include "services/trainer/core/checkpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "services/trainer/core/trainer.h"
#include "services/trainer/core/worker_policy.h"

namespace greenloop::trainer {
namespace {

namespace fs = std::filesystem;

// Flushes `path` (a file or a directory: its entries) to the disk, so that what a rename
// published survives a power loss, not only a crash of the process.
absl::Status Sync(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(fmt::format("cannot open {} to sync it", path.string()));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return absl::InternalError(fmt::format("cannot sync {}", path.string()));
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InternalError(fmt::format("cannot write {}", tmp.string()));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) return absl::InternalError(fmt::format("cannot write {}", tmp.string()));
  }
  if (absl::Status s = Sync(tmp); !s.ok()) return s;
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    return absl::InternalError(fmt::format("cannot rename {}: {}", tmp.string(), ec.message()));
  }
  return Sync(path.parent_path());
}

// The step of a checkpoint's folder name ("epoch-3-step-468"), or nullopt for anything else.
std::optional<std::uint64_t> StepOf(const std::string& name) {
  if (!CheckCheckpointName(name, "").ok()) return std::nullopt;
  const std::string digits = name.substr(name.rfind('-') + 1);
  std::uint64_t step = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return step;
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
  if (!StepOf(name).has_value()) {
    return absl::InvalidArgumentError(
        fmt::format("checkpoint name '{}' is not epoch-N-step-M", name));
  }
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
  for (const char* file : {"model.pt", "optimizer.pt"}) {
    if (absl::Status s = Sync(tmp / file); !s.ok()) return s;
  }
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  if (ec) {
    return absl::InternalError(
        fmt::format("cannot publish {}: {}", final_dir.string(), ec.message()));
  }
  if (absl::Status s = Sync(dir); !s.ok()) return s;
  if (absl::Status s = WriteFileAtomically(dir / "LATEST", name); !s.ok()) return s;
  // The newest kKeptCheckpoints stay: ranks that crashed at different moments still share one.
  std::vector<std::pair<std::uint64_t, fs::path>> kept;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_directory()) continue;
    const std::string folder = entry.path().filename().string();
    if (const std::optional<std::uint64_t> step = StepOf(folder); step.has_value()) {
      kept.emplace_back(*step, entry.path());
    } else if (folder.ends_with(".tmp")) {
      fs::remove_all(entry.path(), ec);  // what a crash left half written
    }
  }
  std::sort(kept.begin(), kept.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t i = kKeptCheckpoints; i < kept.size(); ++i) fs::remove_all(kept[i].second, ec);
  return final_dir.string();
}

std::vector<std::uint64_t> CheckpointSteps(const std::string& dir_name) {
  std::set<std::uint64_t> steps;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir_name, ec)) {
    if (!entry.is_directory()) continue;
    const std::optional<std::uint64_t> step = StepOf(entry.path().filename().string());
    if (step.has_value() && fs::exists(entry.path() / "state.pb", ec)) steps.insert(*step);
  }
  return {steps.begin(), steps.end()};
}

absl::StatusOr<std::optional<std::uint64_t>> ResumeStep(
    const std::vector<std::vector<std::uint64_t>>& per_rank, const std::string& run_id) {
  std::vector<std::uint32_t> without;
  for (std::uint32_t r = 0; r < per_rank.size(); ++r) {
    if (per_rank[r].empty()) without.push_back(r);
  }
  if (without.size() == per_rank.size()) return std::optional<std::uint64_t>();  // a fresh start
  if (!without.empty()) {
    return absl::FailedPreconditionError(fmt::format(
        "rank {} has no checkpoint of run {} while other ranks have: the ranks cannot resume "
        "together (restore that rank's checkpoints, or remove every rank's to start over)",
        without.front(), run_id));
  }
  std::set<std::uint64_t> common(per_rank.front().begin(), per_rank.front().end());
  for (const std::vector<std::uint64_t>& steps : per_rank) {
    std::set<std::uint64_t> next;
    for (std::uint64_t s : steps) {
      if (common.contains(s)) next.insert(s);
    }
    common = std::move(next);
  }
  if (common.empty()) {
    return absl::FailedPreconditionError(fmt::format(
        "the ranks of run {} hold no checkpoint of the same step: they cannot resume together",
        run_id));
  }
  return std::optional<std::uint64_t>(*common.rbegin());
}

absl::StatusOr<LoadedCheckpoint> LoadCheckpointAt(const std::string& dir_name, std::uint64_t step,
                                                  const std::string& run_id,
                                                  std::uint32_t world_size,
                                                  torch::nn::Module& model,
                                                  torch::optim::Optimizer& optimizer,
                                                  const std::string& architecture) {
  const fs::path dir = dir_name;
  fs::path path;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory() && StepOf(entry.path().filename().string()) == step) {
      path = entry.path();
    }
  }
  if (path.empty()) {
    return absl::NotFoundError(
        fmt::format("{} holds no checkpoint of step {}", dir.string(), step));
  }
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

absl::StatusOr<LoadedCheckpoint> LoadLatestCheckpoint(
    const std::string& dir_name, const std::string& run_id, std::uint32_t world_size,
    torch::nn::Module& model, torch::optim::Optimizer& optimizer, const std::string& architecture) {
  const fs::path dir = dir_name;
  absl::StatusOr<std::string> latest = ReadFile(dir / "LATEST");
  if (!latest.ok()) return latest.status();
  if (absl::Status s = CheckCheckpointName(*latest, (dir / "LATEST").string()); !s.ok()) return s;
  return LoadCheckpointAt(dir_name, *StepOf(*latest), run_id, world_size, model, optimizer,
                          architecture);
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
