// In-memory fakes of the trainer's ports, for tests: an energy meter that turns CPU time into
// joules, a feedback queue whose simulated crowd answers every enqueued item with the sample's
// clean label after a delay, and a listener that records what the loop reports.
//
// Thread-safety: FakeFeedbackQueue and RecordingListener are thread-safe; FakeEnergyMeter too.
#pragma once

#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "services/trainer/core/datasets.h"
#include "services/trainer/core/ports.h"
#include "services/trainer/core/trainer.h"

namespace greenloop::trainer::testing {

// Joules = watts × process CPU seconds since Register.
class FakeEnergyMeter final : public EnergyMeter {
 public:
  explicit FakeEnergyMeter(double watts = 20.0) : watts_(watts) {}
  absl::Status Register(const std::string& run_id, int pid, std::uint32_t rank) override {
    std::lock_guard lock(mu_);
    if (!register_error_.ok()) return register_error_;
    registered_[run_id] = {pid, rank};
    ++registers_;
    start_cpu_ = CpuSeconds();
    return absl::OkStatus();
  }
  absl::Status Unregister(const std::string& run_id, int) override {
    std::lock_guard lock(mu_);
    registered_.erase(run_id);
    ++unregisters_;
    return absl::OkStatus();
  }
  absl::StatusOr<double> RunEnergyJoules(const std::string&) override {
    std::lock_guard lock(mu_);
    ++reads_;
    if (down_after_reads_ >= 0 && reads_ > down_after_reads_) {
      return absl::UnavailableError("energy collector down");
    }
    return carried_joules_ + watts_ * (CpuSeconds() - start_cpu_);
  }
  // From the read after `reads` on, every read fails (a collector outage); -1: never.
  void GoDownAfterReads(int reads) {
    std::lock_guard lock(mu_);
    down_after_reads_ = reads;
  }
  void FailRegister(absl::Status status) {
    std::lock_guard lock(mu_);
    register_error_ = std::move(status);
  }
  int registers() const {
    std::lock_guard lock(mu_);
    return registers_;
  }
  int unregisters() const {
    std::lock_guard lock(mu_);
    return unregisters_;
  }
  int reads() const {
    std::lock_guard lock(mu_);
    return reads_;
  }
  bool registered(const std::string& run_id) const {
    std::lock_guard lock(mu_);
    return registered_.contains(run_id);
  }

 private:
  static double CpuSeconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }
  mutable std::mutex mu_;
  double watts_;
  double start_cpu_ = 0;
  double carried_joules_ = 0;
  absl::Status register_error_;
  std::map<std::string, std::pair<int, std::uint32_t>> registered_;
  int registers_ = 0;
  int unregisters_ = 0;
  int reads_ = 0;
  int down_after_reads_ = -1;
};

// A feedback queue with a perfect simulated crowd: an enqueued item gets a LABEL_CHOICE verdict
// with its clean label once TakeVerdicts() has been called `delay_polls` more times. In a
// QUESTION_KIND_FEATURE_RULE or QUESTION_KIND_FEATURE_MASK campaign every image item's verdict
// marks rule_cells() (by default the four corners, where a decoy sits); a text item's, the planted
// words ("qzx…") among its words.
class FakeFeedbackQueue final : public FeedbackQueue {
 public:
  FakeFeedbackQueue(const LoadedDataset& dataset, int delay_polls, double confidence = 0.95)
      : dataset_(dataset), delay_polls_(delay_polls), confidence_(confidence) {}

  absl::Status EnsureCampaign(const std::string& campaign_id,
                              const v1::CampaignSpec& spec) override {
    std::lock_guard lock(mu_);
    campaigns_[campaign_id] = spec;
    kind_ = spec.question_kind();
    return absl::OkStatus();
  }
  absl::Status Enqueue(const std::string&, const std::vector<v1::ItemInput>& items) override {
    std::lock_guard lock(mu_);
    for (const v1::ItemInput& item : items) {
      enqueued_.push_back(item);
      waiting_.push_back({item, polls_ + delay_polls_});
    }
    return absl::OkStatus();
  }
  absl::Status StartWatching(const std::string&, const std::string& cursor) override {
    std::lock_guard lock(mu_);
    start_cursor_ = cursor;
    watching_ = true;
    return absl::OkStatus();
  }
  std::vector<ReceivedVerdict> TakeVerdicts() override {
    std::lock_guard lock(mu_);
    ++polls_;
    std::vector<ReceivedVerdict> out;
    while (!waiting_.empty() && waiting_.front().second <= polls_) {
      const v1::ItemInput item = waiting_.front().first;
      waiting_.pop_front();
      std::int64_t clean = -1;
      for (std::size_t i = 0; i < dataset_.train.refs.size(); ++i) {
        if (dataset_.train.refs[i] == item.sample().index()) clean = dataset_.train.clean_labels[i];
      }
      ReceivedVerdict r;
      r.verdict.set_item_id("item-" + std::to_string(item.sample().index()));
      *r.verdict.mutable_sample() = item.sample();
      r.verdict.set_question_kind(kind_);
      r.verdict.set_given_label(item.given_label());
      const bool features =
          kind_ == v1::QUESTION_KIND_FEATURE_RULE || kind_ == v1::QUESTION_KIND_FEATURE_MASK;
      if (features && item.payload().has_text()) {
        // Text: the positions of the planted words ("qzx…") among the item's words.
        std::uint32_t cell = 0;
        std::istringstream words(item.payload().text());
        for (std::string w; std::getline(words, w); ++cell) {
          if (w.starts_with("qzx")) r.verdict.mutable_feature_mask()->add_irrelevant_cells(cell);
        }
        r.verdict.mutable_feature_mask();
      } else if (features) {
        for (std::uint32_t cell : rule_cells_)
          r.verdict.mutable_feature_mask()->add_irrelevant_cells(cell);
      } else {
        r.verdict.set_consensus_label(static_cast<std::uint32_t>(clean));
      }
      r.verdict.set_confidence(confidence_);
      r.verdict.set_revision(1);
      r.cursor = std::to_string(++delivered_);
      r.receive_time = absl::Now();
      out.push_back(std::move(r));
    }
    return out;
  }
  void StopWatching() override {
    std::lock_guard lock(mu_);
    watching_ = false;
  }

  std::vector<v1::ItemInput> enqueued() const {
    std::lock_guard lock(mu_);
    return enqueued_;
  }
  std::string start_cursor() const {
    std::lock_guard lock(mu_);
    return start_cursor_;
  }
  std::size_t campaigns() const {
    std::lock_guard lock(mu_);
    return campaigns_.size();
  }
  v1::CampaignSpec campaign(const std::string& id) const {
    std::lock_guard lock(mu_);
    auto it = campaigns_.find(id);
    return it == campaigns_.end() ? v1::CampaignSpec() : it->second;
  }
  void set_rule_cells(std::vector<std::uint32_t> cells) {
    std::lock_guard lock(mu_);
    rule_cells_ = std::move(cells);
  }

 private:
  const LoadedDataset& dataset_;
  const int delay_polls_;
  const double confidence_;
  mutable std::mutex mu_;
  std::map<std::string, v1::CampaignSpec> campaigns_;
  v1::QuestionKind kind_ = v1::QUESTION_KIND_LABEL_CHOICE;
  std::vector<std::uint32_t> rule_cells_ = {0, 6, 42, 48};
  std::vector<v1::ItemInput> enqueued_;
  std::deque<std::pair<v1::ItemInput, int>> waiting_;
  int polls_ = 0;
  std::uint64_t delivered_ = 0;
  std::string start_cursor_;
  bool watching_ = false;
};

// Records every event, evaluation and change.
class RecordingListener final : public TrainingListener {
 public:
  void OnEvent(v1::ProgressEventKind kind, const v1::Progress& progress,
               const std::string& message) override {
    std::lock_guard lock(mu_);
    events_.push_back({kind, progress, message});
  }
  void OnModel(const v1::ModelInfo& info) override {
    std::lock_guard lock(mu_);
    model_ = info;
  }
  void OnEvaluation(const EvaluationPoint& point) override {
    std::lock_guard lock(mu_);
    curve_.push_back(point);
  }
  void OnChanges(const std::vector<SampleChange>& changes) override {
    std::lock_guard lock(mu_);
    changes_.insert(changes_.end(), changes.begin(), changes.end());
  }
  struct Event {
    v1::ProgressEventKind kind;
    v1::Progress progress;
    std::string message;
  };
  std::vector<Event> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::vector<EvaluationPoint> curve() const {
    std::lock_guard lock(mu_);
    return curve_;
  }
  std::vector<SampleChange> changes() const {
    std::lock_guard lock(mu_);
    return changes_;
  }
  v1::ModelInfo model() const {
    std::lock_guard lock(mu_);
    return model_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Event> events_;
  std::vector<EvaluationPoint> curve_;
  std::vector<SampleChange> changes_;
  v1::ModelInfo model_;
};

}  // namespace greenloop::trainer::testing
