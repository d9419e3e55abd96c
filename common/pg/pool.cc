#include "common/pg/pool.h"

#include <cmath>
#include <cstdlib>
#include <exception>
#include <memory>
#include <pqxx/connection>
#include <pqxx/errorhandler>
#include <pqxx/except>
#include <pqxx/transaction>
#include <string>
#include <string_view>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/logging/logging.h"
#include "common/pg/errors.h"
#include "common/pg/url.h"
#include "common/status/status.h"

namespace greenloop::pg {
namespace {

constexpr int kMaxPoolSize = 1000;

// Sends the server's NOTICE/WARNING messages to the structured log instead of libpqxx's default,
// which writes them to stderr.
class NoticeToLog final : public pqxx::errorhandler {
 public:
  explicit NoticeToLog(pqxx::connection_base& conn) : pqxx::errorhandler(conn) {}

  bool operator()(const char msg[]) noexcept override {
    try {
      const std::string_view text = msg;
      const std::string line = OneLine(text);
      if (text.starts_with("WARNING")) {
        logging::Warn("PostgreSQL warning", {{"notice", line}});
      } else {
        logging::Debug("PostgreSQL notice", {{"notice", line}});
      }
    } catch (...) {
      // Logging must not throw out of a noexcept libpqxx callback; the notice is lost.
    }
    return false;  // handled; do not pass it on to libpqxx's stderr handler
  }
};

// The reason libpq gives, on one line and without libpq's boilerplate: for
//   connection to server at "127.0.0.1", port 5432 failed: Connection refused
//       Is the server running on that host and accepting TCP/IP connections?
// returns "connection refused".
std::string ConnectFailureReason(std::string_view what) {
  std::string_view line = what.substr(0, what.find('\n'));
  if (const size_t failed = line.find("failed: "); failed != std::string_view::npos) {
    line.remove_prefix(failed + 8);
  } else if (const size_t colon = line.find("could not connect to server: ");
             colon != std::string_view::npos) {
    line.remove_prefix(colon + 29);
  }
  for (std::string_view severity : {"FATAL:", "ERROR:"}) {
    if (line.starts_with(severity)) line.remove_prefix(severity.size());
  }
  std::string reason = OneLine(line);
  if (reason.empty()) reason = OneLine(what);
  if (reason.empty()) reason = "unknown error";
  // "Connection refused" -> "connection refused", but keep "SSL ..." and the like.
  if (reason.size() > 1 && absl::ascii_isupper(static_cast<unsigned char>(reason[0])) &&
      absl::ascii_islower(static_cast<unsigned char>(reason[1]))) {
    reason[0] = absl::ascii_tolower(static_cast<unsigned char>(reason[0]));
  }
  return reason;
}

}  // namespace

struct Pool::Slot {
  explicit Slot(const std::string& conninfo) : conn(conninfo), notices(conn) {}
  pqxx::connection conn;
  NoticeToLog notices;  // declared after conn: unregisters before conn is destroyed
};

// ---- Lease ------------------------------------------------------------------------------------

Pool::Lease::Lease(Pool* pool, std::unique_ptr<Slot> slot) : pool_(pool), slot_(std::move(slot)) {}

Pool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), slot_(std::move(other.slot_)), discard_(other.discard_) {
  other.pool_ = nullptr;
}

Pool::Lease& Pool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = std::exchange(other.pool_, nullptr);
    slot_ = std::move(other.slot_);
    discard_ = other.discard_;
  }
  return *this;
}

Pool::Lease::~Lease() { Release(); }

void Pool::Lease::Release() {
  if (pool_ != nullptr && slot_ != nullptr) pool_->Return(std::move(slot_), discard_);
  pool_ = nullptr;
}

pqxx::connection& Pool::Lease::operator*() const { return slot_->conn; }
pqxx::connection* Pool::Lease::operator->() const { return &slot_->conn; }

void Pool::Lease::Discard() { discard_ = true; }

absl::Status Pool::Lease::Transact(absl::FunctionRef<absl::Status(pqxx::work&)> fn) {
  try {
    pqxx::work tx(slot_->conn);
    absl::Status status = fn(tx);
    if (status.ok()) {
      tx.commit();
    } else {
      try {
        tx.abort();
      } catch (const std::exception&) {
        // The rollback failed because the connection went; fn's status is the news.
        discard_ = true;
      }
    }
    return status;
  } catch (const std::exception& e) {
    if (IsConnectionLost(e) || !slot_->conn.is_open()) discard_ = true;
    return StatusFromException(e);
  } catch (...) {
    return absl::InternalError("unknown exception in a PostgreSQL transaction");
  }
}

// ---- Pool -------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Pool>> Pool::Create(PoolOptions options) {
  if (options.url.empty()) {
    return absl::InvalidArgumentError("PostgreSQL url is empty");
  }
  if (options.max_size < 1 || options.max_size > kMaxPoolSize) {
    return absl::InvalidArgumentError(absl::StrCat("PostgreSQL pool max_size must be 1 to ",
                                                   kMaxPoolSize, ", not ", options.max_size));
  }
  if (options.acquire_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("PostgreSQL pool acquire_timeout must not be negative");
  }
  if (options.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("PostgreSQL connect_timeout must be positive");
  }
  GREENLOOP_ASSIGN_OR_RETURN(std::string target, DescribeTarget(options.url));
  // libpq treats 1 as 2 and 0 as "forever"; round up to whole seconds, at least 2.
  const auto timeout_s = static_cast<int64_t>(
      std::max(2.0, std::ceil(absl::ToDoubleSeconds(options.connect_timeout))));
  std::string conninfo =
      WithDefaultParameter(options.url, "connect_timeout", absl::StrCat(timeout_s));
  std::string password = PasswordOf(options.url);

  auto pool = absl::WrapUnique(
      new Pool(std::move(options), std::move(conninfo), std::move(target), std::move(password)));
  {
    absl::MutexLock lock(&pool->mu_);
    ++pool->size_;
  }
  absl::StatusOr<std::unique_ptr<Slot>> first = pool->Connect();
  absl::MutexLock lock(&pool->mu_);
  if (!first.ok()) {
    --pool->size_;
    return first.status();
  }
  pool->idle_.push_back(*std::move(first));
  return pool;
}

Pool::Pool(PoolOptions options, std::string conninfo, std::string target, std::string password)
    : options_(std::move(options)),
      conninfo_(std::move(conninfo)),
      target_(std::move(target)),
      password_(std::move(password)) {}

Pool::~Pool() {
  absl::MutexLock lock(&mu_);
  const int in_use = size_ - static_cast<int>(idle_.size());
  if (in_use != 0) {
    logging::Error("pg::Pool destroyed while connections are leased",
                   {{"target", target_}, {"in_use", in_use}});
    std::abort();
  }
}

absl::StatusOr<std::unique_ptr<Pool::Slot>> Pool::Connect() {
  try {
    auto slot = std::make_unique<Slot>(conninfo_);
    absl::MutexLock lock(&mu_);
    ++connections_opened_;
    return slot;
  } catch (const std::exception& e) {
    std::string reason = ConnectFailureReason(e.what());
    if (!password_.empty()) reason = absl::StrReplaceAll(reason, {{password_, "***"}});
    return absl::UnavailableError(
        absl::StrCat("cannot connect to PostgreSQL at ", target_, ": ", reason));
  }
}

bool Pool::CanLease() const { return !idle_.empty() || size_ < options_.max_size; }

absl::StatusOr<Pool::Lease> Pool::Acquire() {
  std::unique_ptr<Slot> slot;
  {
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithTimeout(absl::Condition(this, &Pool::CanLease), options_.acquire_timeout)) {
      ++acquire_timeouts_;
      return absl::DeadlineExceededError(
          absl::StrCat("all ", options_.max_size, " connections to PostgreSQL at ", target_,
                       " stayed busy for ", absl::FormatDuration(options_.acquire_timeout)));
    }
    if (!idle_.empty()) {
      slot = std::move(idle_.back());  // most recently used: warm, and lets the rest idle
      idle_.pop_back();
    } else {
      ++size_;  // reserve the slot; connect outside the lock
    }
  }
  if (slot != nullptr && !slot->conn.is_open()) {
    logging::Warn("dropping a broken PostgreSQL connection", {{"target", target_}});
    slot.reset();
    absl::MutexLock lock(&mu_);
    ++connections_discarded_;
  }
  if (slot == nullptr) {
    absl::StatusOr<std::unique_ptr<Slot>> fresh = Connect();
    if (!fresh.ok()) {
      absl::MutexLock lock(&mu_);
      --size_;
      return fresh.status();
    }
    slot = *std::move(fresh);
  }
  return Lease(this, std::move(slot));
}

void Pool::Return(std::unique_ptr<Slot> slot, bool discard) {
  const bool keep = !discard && slot->conn.is_open();
  if (!keep) slot.reset();  // close outside the lock
  absl::MutexLock lock(&mu_);
  if (keep) {
    idle_.push_back(std::move(slot));
  } else {
    --size_;
    ++connections_discarded_;
  }
}

absl::Status Pool::Transact(absl::FunctionRef<absl::Status(pqxx::work&)> fn) {
  absl::Status status;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    GREENLOOP_ASSIGN_OR_RETURN(Lease lease, Acquire());
    status = lease.Transact(fn);
    if (!lease.discard_ || status.code() != absl::StatusCode::kUnavailable) return status;
    if (attempt == 1) {
      logging::Warn("lost a PostgreSQL connection; retrying the transaction on a fresh one",
                    {{"target", target_}, {"error", status.ToString()}});
    }
  }
  return status;
}

PoolStats Pool::Stats() const {
  absl::MutexLock lock(&mu_);
  PoolStats stats;
  stats.max_size = options_.max_size;
  stats.size = size_;
  stats.idle = static_cast<int>(idle_.size());
  stats.in_use = size_ - stats.idle;
  stats.connections_opened = connections_opened_;
  stats.connections_discarded = connections_discarded_;
  stats.acquire_timeouts = acquire_timeouts_;
  return stats;
}

}  // namespace greenloop::pg
