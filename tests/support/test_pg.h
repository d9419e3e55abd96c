// The PostgreSQL that `pg` tests run against, and a database of their own on it.
//
// ctest starts one throwaway cluster per run (the `pg` fixture, see
// cmake/GreenloopPostgresFixture.cmake) and tells each test where it is through
// GREENLOOP_TEST_PG_URL_FILE. A suite takes a ScratchDatabase so that its tables never meet
// another suite's, even when ctest runs tests in parallel:
//
//   class FeedbackStorageTest : public ::testing::Test {
//    protected:
//     greenloop::testing::ScratchDatabase db_;
//   };
//   TEST_F(FeedbackStorageTest, LeasesEachItemOnce) {
//     auto pool = pg::Pool::Create({.url = db_.url()});
//     ...
//   }
//
// Outside ctest, point a test at any server you own: GREENLOOP_TEST_PG_URL=postgresql://...
// There is no skipping: a pg test without a server fails, loudly.
//
// Thread-safety: TestPgUrl() is thread-safe; a ScratchDatabase is owned by one test.
#pragma once

#include <string>
#include <string_view>

namespace greenloop::testing {

// Returns the url of the test server: $GREENLOOP_TEST_PG_URL if set, else the contents of the
// file named by $GREENLOOP_TEST_PG_URL_FILE. Throws std::runtime_error saying what to do if
// neither is set or the file is missing or empty (a gtest SetUp reports it as the failure).
std::string TestPgUrl();

// A database created for one test suite and dropped (WITH (FORCE)) when it goes out of scope.
class ScratchDatabase final {
 public:
  // Creates a uniquely named database on TestPgUrl()'s server. Throws std::runtime_error if the
  // server cannot be reached or refuses.
  ScratchDatabase();
  // Same, on the server `server_url` points at (its database is only used to connect).
  explicit ScratchDatabase(std::string server_url);
  ScratchDatabase(const ScratchDatabase&) = delete;
  ScratchDatabase& operator=(const ScratchDatabase&) = delete;
  // Drops the database, disconnecting anyone still in it; failures go to stderr.
  ~ScratchDatabase();

  // The url of the new database (the server url with its database replaced).
  const std::string& url() const { return url_; }
  // The database's name, e.g. "gltest_4242_3_9f1c".
  const std::string& name() const { return name_; }

 private:
  std::string server_url_;
  std::string name_;
  std::string url_;
};

}  // namespace greenloop::testing
