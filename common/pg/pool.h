// A bounded pool of PostgreSQL connections, and the one place libpqxx exceptions become Status.
//
// Every greenloop service that keeps state in PostgreSQL creates one Pool at start and hands it to
// its storage classes through their constructors. Storage code runs each unit of work with Run(),
// which leases a connection, opens a transaction, commits it, and converts anything libpqxx
// throws into the most specific absl::Status (see common/pg/errors.h):
//
//   GREENLOOP_ASSIGN_OR_RETURN(std::unique_ptr<pg::Pool> pool,
//                              pg::Pool::Create({.url = config.postgres_url}));
//   absl::StatusOr<int64_t> count = pool->Run([&](pqxx::work& tx) {
//     return tx.exec1("SELECT count(*) FROM feedback_items")[0].as<int64_t>();
//   });
//
// Create() connects once before returning, so a PostgreSQL that is down at start fails fast with
// one line ("cannot connect to PostgreSQL at 127.0.0.1:5432/greenloop: connection refused").
// Later connections are opened on demand up to max_size; a connection found broken is dropped and
// replaced, and Run() retries once on a fresh connection when the connection was lost before the
// commit (the server rolled the transaction back, so running it again is safe).
//
// Use Acquire() instead of Run() only for work that needs one session across several transactions
// (advisory locks, LISTEN); the Lease gives the connection back when it goes out of scope. Do not
// use a Pool for LISTEN connections that live for the whole process: they would hold a slot
// forever; open a dedicated pqxx::connection instead.
//
// Thread-safety: Pool is thread-safe. A Lease, like the pqxx::connection it holds, is used by one
// thread at a time, and must not outlive its Pool (the Pool's destructor aborts if one does).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <pqxx/connection>
#include <pqxx/result>
#include <pqxx/transaction>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace greenloop::pg {

struct PoolOptions {
  // libpq connection string: postgresql://user[:password]@host:port/dbname[?param=value] or
  // key=value pairs. Never logged as is (see common/pg/url.h).
  std::string url;
  // Most connections open at once, 1 to 1000.
  int max_size = 8;
  // How long Acquire() waits for a busy pool before DEADLINE_EXCEEDED.
  absl::Duration acquire_timeout = absl::Seconds(5);
  // libpq connect_timeout for each new connection; whole seconds, at least 2 (libpq's minimum).
  // A connect_timeout in the url wins.
  absl::Duration connect_timeout = absl::Seconds(5);
};

// A snapshot of the pool, for metrics and tests.
struct PoolStats {
  int max_size = 0;
  int size = 0;                            // connections open or being opened
  int idle = 0;                            // open and waiting in the pool
  int in_use = 0;                          // leased (size - idle)
  std::int64_t connections_opened = 0;     // since Create()
  std::int64_t connections_discarded = 0;  // found broken, or dropped with Lease::Discard()
  std::int64_t acquire_timeouts = 0;       // Acquire() calls that hit acquire_timeout
};

class Pool final {
 private:
  struct Slot;  // a connection plus the handler that sends its notices to the log

 public:
  // A leased connection; gives it back to the pool on destruction. Movable, not copyable.
  class Lease final {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();

    // The connection; valid until the Lease is destroyed or moved from.
    pqxx::connection& operator*() const;
    pqxx::connection* operator->() const;

    // Closes the connection instead of giving it back, e.g. after changing session state.
    void Discard();

    // Runs `fn` in a transaction on this connection and commits it if `fn` returns OK (rolls
    // back otherwise); converts exceptions with StatusFromException(). Does not retry: the caller
    // holds this session on purpose. A lost connection is discarded when the Lease goes.
    absl::Status Transact(absl::FunctionRef<absl::Status(pqxx::work&)> fn);

   private:
    friend class Pool;
    Lease(Pool* pool, std::unique_ptr<Slot> slot);
    void Release();

    Pool* pool_;
    std::unique_ptr<Slot> slot_;
    bool discard_ = false;
  };

  // Creates a pool and opens its first connection. INVALID_ARGUMENT for bad options or an
  // unparsable url; UNAVAILABLE (one line, password never shown) if PostgreSQL cannot be reached.
  static absl::StatusOr<std::unique_ptr<Pool>> Create(PoolOptions options);

  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool();

  // Leases a connection, opening one if fewer than max_size are open. DEADLINE_EXCEEDED when all
  // max_size stay busy for acquire_timeout; UNAVAILABLE when a new connection cannot be opened.
  absl::StatusOr<Lease> Acquire();

  // Runs `fn(pqxx::work&)` in a read-committed transaction on a leased connection and commits it.
  // `fn` may return void (gives absl::Status), absl::Status or absl::StatusOr<T> (a non-OK
  // result rolls back and is returned as is), or any T (gives absl::StatusOr<T>). Exceptions are
  // converted with StatusFromException(). If the connection is lost before the commit, `fn` runs
  // once more on a fresh connection, so it must not have effects outside the transaction that
  // cannot be repeated. Start `fn` with "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE" where
  // needed, and retry ABORTED results at the level that knows the whole operation.
  template <typename F>
  auto Run(F&& fn);

  // Run() for a function that returns absl::Status; the non-template core of Run().
  absl::Status Transact(absl::FunctionRef<absl::Status(pqxx::work&)> fn);

  // Returns a snapshot of the pool's counters.
  PoolStats Stats() const;

  // Returns "host:port/dbname", for messages and metric labels; never has a password.
  const std::string& target() const { return target_; }

 private:
  Pool(PoolOptions options, std::string conninfo, std::string target, std::string password);

  // Opens one connection; UNAVAILABLE with the one-line message on failure.
  absl::StatusOr<std::unique_ptr<Slot>> Connect();
  void Return(std::unique_ptr<Slot> slot, bool discard);
  bool CanLease() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PoolOptions options_;
  const std::string conninfo_;  // url plus connect_timeout; holds the password, never logged
  const std::string target_;
  const std::string password_;  // to scrub it from libpq messages

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Slot>> idle_ ABSL_GUARDED_BY(mu_);
  int size_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t connections_opened_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t connections_discarded_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t acquire_timeouts_ ABSL_GUARDED_BY(mu_) = 0;
};

namespace internal {
template <typename T>
struct IsStatusOr : std::false_type {};
template <typename T>
struct IsStatusOr<absl::StatusOr<T>> : std::true_type {};
}  // namespace internal

template <typename F>
auto Pool::Run(F&& fn) {
  using R = std::invoke_result_t<F&, pqxx::work&>;
  if constexpr (std::is_void_v<R>) {
    return Transact([&](pqxx::work& tx) {
      fn(tx);
      return absl::OkStatus();
    });
  } else if constexpr (std::is_same_v<R, absl::Status>) {
    return Transact([&](pqxx::work& tx) { return fn(tx); });
  } else if constexpr (internal::IsStatusOr<R>::value) {
    std::optional<R> result;
    absl::Status status = Transact([&](pqxx::work& tx) {
      result.emplace(fn(tx));
      return result->status();
    });
    if (!status.ok()) return R(std::move(status));
    return std::move(*result);
  } else {
    std::optional<R> result;
    absl::Status status = Transact([&](pqxx::work& tx) {
      result.emplace(fn(tx));
      return absl::OkStatus();
    });
    if (!status.ok()) return absl::StatusOr<R>(std::move(status));
    return absl::StatusOr<R>(std::move(*result));
  }
}

}  // namespace greenloop::pg
