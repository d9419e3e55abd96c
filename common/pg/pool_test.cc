// Pool against the real PostgreSQL of the `pg` CTest fixture, each test in a scratch database.
#include "common/pg/pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <stdexcept>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/support/test_pg.h"

namespace greenloop::pg {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class PgPoolTest : public ::testing::Test {
 protected:
  std::unique_ptr<Pool> MakePool(int max_size = 4,
                                 absl::Duration acquire_timeout = absl::Seconds(5)) {
    absl::StatusOr<std::unique_ptr<Pool>> pool =
        Pool::Create({.url = db_.url(), .max_size = max_size, .acquire_timeout = acquire_timeout});
    EXPECT_TRUE(pool.ok()) << pool.status();
    return pool.ok() ? *std::move(pool) : nullptr;
  }

  // Terminates backend `pid` from a connection outside the pool and waits until it is gone.
  void KillBackend(int pid) {
    pqxx::connection admin(db_.url());
    pqxx::nontransaction tx(admin);
    ASSERT_TRUE(tx.exec1(absl::StrCat("SELECT pg_terminate_backend(", pid, ")"))[0].as<bool>());
    for (int i = 0; i < 100; ++i) {
      if (tx.exec1(absl::StrCat("SELECT count(*) FROM pg_stat_activity WHERE pid = ", pid))[0]
              .as<int>() == 0) {
        return;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    FAIL() << "backend " << pid << " still alive";
  }

  testing::ScratchDatabase db_;
};

int BackendPid(Pool& pool) {
  absl::StatusOr<int> pid =
      pool.Run([](pqxx::work& tx) { return tx.exec1("SELECT pg_backend_pid()")[0].as<int>(); });
  EXPECT_TRUE(pid.ok()) << pid.status();
  return pid.value_or(-1);
}

// A loopback port nobody listens on: bind an ephemeral port, then close it.
int ClosedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST_F(PgPoolTest, CreateOpensOneConnection) {
  std::unique_ptr<Pool> pool = MakePool();
  ASSERT_NE(pool, nullptr);
  const PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.size, 1);
  EXPECT_EQ(stats.idle, 1);
  EXPECT_EQ(stats.in_use, 0);
  EXPECT_EQ(stats.max_size, 4);
  EXPECT_EQ(stats.connections_opened, 1);
}

TEST_F(PgPoolTest, CreateFailsFastOnClosedPortWithoutPassword) {
  const int port = ClosedPort();
  ASSERT_GT(port, 0);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(
      {.url = absl::StrCat("postgresql://greenloop:hunter2@127.0.0.1:", port, "/greenloop")});
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  ASSERT_EQ(pool.status().code(), absl::StatusCode::kUnavailable) << pool.status();
  EXPECT_EQ(pool.status().message(), absl::StrCat("cannot connect to PostgreSQL at 127.0.0.1:",
                                                  port, "/greenloop: connection refused"));
  EXPECT_THAT(pool.status().message(), AllOf(Not(HasSubstr("hunter2")), Not(HasSubstr("\n"))));
}

TEST_F(PgPoolTest, CreateRejectsBadOptions) {
  EXPECT_EQ(Pool::Create({.url = ""}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Pool::Create({.url = db_.url(), .max_size = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status bad_url = Pool::Create({.url = "postgresql://u:hunter2@h/db?nonsense=1"}).status();
  EXPECT_EQ(bad_url.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_url.message(), Not(HasSubstr("hunter2")));
}

TEST_F(PgPoolTest, AcquireBeyondMaxSizeTimesOutThenSucceedsAfterRelease) {
  std::unique_ptr<Pool> pool = MakePool(/*max_size=*/2, absl::Milliseconds(200));
  ASSERT_NE(pool, nullptr);
  absl::StatusOr<Pool::Lease> first = pool->Acquire();
  absl::StatusOr<Pool::Lease> second = pool->Acquire();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(pool->Stats().in_use, 2);

  const absl::Time start = absl::Now();
  absl::StatusOr<Pool::Lease> third = pool->Acquire();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(190));
  EXPECT_EQ(third.status().code(), absl::StatusCode::kDeadlineExceeded) << third.status();
  EXPECT_EQ(pool->Stats().acquire_timeouts, 1);
  EXPECT_EQ(pool->Stats().size, 2);

  first = absl::UnavailableError("released");  // destroys the lease: back to the pool
  absl::StatusOr<Pool::Lease> fourth = pool->Acquire();
  ASSERT_TRUE(fourth.ok()) << fourth.status();
  EXPECT_EQ(pool->Stats().size, 2);
  EXPECT_EQ(pool->Stats().connections_opened, 2);
}

TEST_F(PgPoolTest, WaitingAcquireGetsTheReleasedConnection) {
  std::unique_ptr<Pool> pool = MakePool(/*max_size=*/1, absl::Seconds(10));
  ASSERT_NE(pool, nullptr);
  auto held = std::make_unique<absl::StatusOr<Pool::Lease>>(pool->Acquire());
  ASSERT_TRUE(held->ok());
  absl::Status waited = absl::UnknownError("not run");
  std::thread waiter([&] { waited = pool->Acquire().status(); });
  absl::SleepFor(absl::Milliseconds(100));
  held.reset();
  waiter.join();
  EXPECT_TRUE(waited.ok()) << waited;
}

TEST_F(PgPoolTest, LeaseMovesAndDiscardCloses) {
  std::unique_ptr<Pool> pool = MakePool();
  ASSERT_NE(pool, nullptr);
  {
    absl::StatusOr<Pool::Lease> lease = pool->Acquire();
    ASSERT_TRUE(lease.ok());
    Pool::Lease moved = *std::move(lease);
    EXPECT_TRUE(moved->is_open());
    EXPECT_EQ(pool->Stats().in_use, 1);
    moved.Discard();
  }
  const PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.size, 0);
  EXPECT_EQ(stats.connections_discarded, 1);
  EXPECT_GT(BackendPid(*pool), 0);  // and a new one is opened on demand
}

TEST_F(PgPoolTest, RunSucceedsAfterPooledConnectionsBackendIsKilled) {
  std::unique_ptr<Pool> pool = MakePool(/*max_size=*/1);
  ASSERT_NE(pool, nullptr);
  const int old_pid = BackendPid(*pool);
  KillBackend(old_pid);

  absl::StatusOr<int> pid =
      pool->Run([](pqxx::work& tx) { return tx.exec1("SELECT pg_backend_pid()")[0].as<int>(); });
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_NE(*pid, old_pid);
  const PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.size, 1);
  EXPECT_EQ(stats.connections_discarded, 1);  // the dead one was dropped, not reused
  EXPECT_EQ(stats.connections_opened, 2);
}

TEST_F(PgPoolTest, RunRetriesOnceWhenConnectionIsLostMidTransaction) {
  std::unique_ptr<Pool> pool = MakePool(/*max_size=*/2);
  ASSERT_NE(pool, nullptr);
  int attempts = 0;
  absl::StatusOr<std::string> result = pool->Run([&](pqxx::work& tx) {
    ++attempts;
    if (attempts == 1) tx.exec("SELECT pg_terminate_backend(pg_backend_pid())");
    return tx.exec1("SELECT 'second try'")[0].as<std::string>();
  });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, "second try");
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(pool->Stats().connections_discarded, 1);
}

TEST_F(PgPoolTest, RunGivesUpWithUnavailableAfterSecondLoss) {
  std::unique_ptr<Pool> pool = MakePool(/*max_size=*/2);
  ASSERT_NE(pool, nullptr);
  int attempts = 0;
  absl::Status status = pool->Run([&](pqxx::work& tx) {
    ++attempts;
    tx.exec("SELECT pg_terminate_backend(pg_backend_pid())");
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(pool->Stats().size, 0);
  EXPECT_TRUE(pool->Run([](pqxx::work& tx) { tx.exec("SELECT 1"); }).ok());
}

class PgPoolErrorTest : public PgPoolTest {
 protected:
  void SetUp() override {
    pool_ = MakePool();
    ASSERT_NE(pool_, nullptr);
    ASSERT_TRUE(pool_
                    ->Run([](pqxx::work& tx) {
                      tx.exec(
                          "CREATE TABLE parents (id int PRIMARY KEY);"
                          "CREATE TABLE items (id int PRIMARY KEY, parent int REFERENCES "
                          "parents(id), qty int CHECK (qty > 0), name text NOT NULL);"
                          "INSERT INTO parents VALUES (1);"
                          "INSERT INTO items VALUES (1, 1, 1, 'one');");
                    })
                    .ok());
  }

  absl::Status Exec(const std::string& sql) {
    return pool_->Run([&](pqxx::work& tx) { tx.exec(sql); });
  }

  std::unique_ptr<Pool> pool_;
};

TEST_F(PgPoolErrorTest, UniqueViolationIsAlreadyExists) {
  absl::Status status = Exec("INSERT INTO items VALUES (1, 1, 1, 'again')");
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_THAT(status.message(), AllOf(HasSubstr("duplicate key"), HasSubstr("23505"),
                                      Not(HasSubstr("\n")), Not(HasSubstr("DETAIL"))));
}

TEST_F(PgPoolErrorTest, ForeignKeyViolationIsFailedPrecondition) {
  EXPECT_EQ(Exec("INSERT INTO items VALUES (2, 99, 1, 'orphan')").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Exec("DELETE FROM parents WHERE id = 1").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(PgPoolErrorTest, GreenloopSqlStatesKeepTheirMessageAndMapToContractCodes) {
  auto raise = [&](const std::string& code) {
    return Exec("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '" + code +
                "', MESSAGE = 'lease ''7'' does not exist'; END $$");
  };
  const absl::Status missing = raise("GL404");
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_EQ(missing.message(), "lease '7' does not exist");
  EXPECT_EQ(raise("GL409").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(raise("GL412").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(raise("GL999").code(), absl::StatusCode::kInternal);
}

TEST_F(PgPoolErrorTest, CheckNotNullAndDataErrorsAreInvalidArgument) {
  EXPECT_EQ(Exec("INSERT INTO items VALUES (2, 1, 0, 'zero')").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Exec("INSERT INTO items VALUES (2, 1, 1, NULL)").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Exec("SELECT 1 / 0").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Exec("SELECT 'abc'::int").code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PgPoolErrorTest, SerializationFailureAndDeadlockAreAborted) {
  for (const char* state : {"40001", "40P01"}) {
    absl::Status status = Exec(absl::StrCat(
        "DO $$ BEGIN RAISE EXCEPTION 'contention' USING ERRCODE = '", state, "'; END $$"));
    EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << state << ": " << status;
  }
}

TEST_F(PgPoolErrorTest, StatementTimeoutIsDeadlineExceeded) {
  absl::Status status = pool_->Run([](pqxx::work& tx) {
    tx.exec("SET LOCAL statement_timeout = 50");
    tx.exec("SELECT pg_sleep(5)");
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
}

TEST_F(PgPoolErrorTest, SyntaxErrorIsInternalWithServerText) {
  absl::Status status = Exec("SELEC 1");
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("syntax error"), HasSubstr("42601")));
}

TEST_F(PgPoolErrorTest, NonPqxxExceptionIsInternal) {
  absl::Status status = pool_->Run([](pqxx::work&) { throw std::runtime_error("boom"); });
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("boom"));
}

TEST_F(PgPoolErrorTest, ReturnedErrorRollsBackAndPassesThrough) {
  absl::StatusOr<int> result = pool_->Run([](pqxx::work& tx) -> absl::StatusOr<int> {
    tx.exec("INSERT INTO items VALUES (5, 1, 1, 'five')");
    return absl::NotFoundError("changed my mind");
  });
  EXPECT_EQ(result.status(), absl::NotFoundError("changed my mind"));
  absl::StatusOr<int64_t> count = pool_->Run(
      [](pqxx::work& tx) { return tx.exec1("SELECT count(*) FROM items")[0].as<int64_t>(); });
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 1);
}

TEST_F(PgPoolErrorTest, FailedTransactionLeavesConnectionUsable) {
  ASSERT_FALSE(Exec("SELEC 1").ok());
  const PoolStats stats = pool_->Stats();
  EXPECT_EQ(stats.idle, stats.size);
  EXPECT_EQ(stats.connections_discarded, 0);
  EXPECT_TRUE(Exec("INSERT INTO items VALUES (3, 1, 3, 'three')").ok());
}

}  // namespace
}  // namespace greenloop::pg
