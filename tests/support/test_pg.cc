#include "tests/support/test_pg.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/nontransaction>
#include <sstream>
#include <stdexcept>
#include <string>

#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/pg/url.h"

namespace greenloop::testing {
namespace {

std::string NewDatabaseName() {
  static std::atomic<int> counter{0};
  absl::BitGen gen;
  return absl::StrFormat("gltest_%d_%d_%04x", static_cast<int>(::getpid()), counter++,
                         absl::Uniform<unsigned>(gen, 0, 0x10000));
}

std::string OneLine(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  return std::string(absl::StripAsciiWhitespace(text));
}

}  // namespace

std::string TestPgUrl() {
  if (const char* url = std::getenv("GREENLOOP_TEST_PG_URL"); url != nullptr && *url != '\0') {
    return url;
  }
  const char* file = std::getenv("GREENLOOP_TEST_PG_URL_FILE");
  if (file == nullptr || *file == '\0') {
    throw std::runtime_error(
        "this test needs PostgreSQL, and neither GREENLOOP_TEST_PG_URL nor "
        "GREENLOOP_TEST_PG_URL_FILE is set: run it through ctest (the `pg` fixture starts a "
        "server), or start one with deploy/local/pg.sh and set GREENLOOP_TEST_PG_URL");
  }
  std::ifstream in(file);
  std::stringstream contents;
  contents << in.rdbuf();
  std::string url(absl::StripAsciiWhitespace(contents.str()));
  if (!in.is_open() || url.empty()) {
    throw std::runtime_error(absl::StrCat(
        "GREENLOOP_TEST_PG_URL_FILE=", file,
        " is missing or empty: did the pg.start test fail? (ctest -L pg --output-on-failure)"));
  }
  return url;
}

ScratchDatabase::ScratchDatabase() : ScratchDatabase(TestPgUrl()) {}

ScratchDatabase::ScratchDatabase(std::string server_url)
    : server_url_(std::move(server_url)), name_(NewDatabaseName()) {
  absl::StatusOr<std::string> url = pg::WithDatabase(server_url_, name_);
  if (!url.ok()) throw std::runtime_error(url.status().ToString());
  url_ = *std::move(url);
  try {
    pqxx::connection conn(server_url_);
    pqxx::nontransaction tx(conn);
    tx.exec0(absl::StrCat("CREATE DATABASE ", tx.quote_name(name_)));
  } catch (const std::exception& e) {
    throw std::runtime_error(absl::StrCat("cannot create scratch database ", name_, " on ",
                                          pg::RedactUrl(server_url_), ": ", OneLine(e.what())));
  }
}

ScratchDatabase::~ScratchDatabase() {
  try {
    pqxx::connection conn(server_url_);
    pqxx::nontransaction tx(conn);
    tx.exec0(absl::StrCat("DROP DATABASE IF EXISTS ", tx.quote_name(name_), " WITH (FORCE)"));
  } catch (const std::exception& e) {
    std::cerr << "cannot drop scratch database " << name_ << ": " << OneLine(e.what()) << "\n";
  }
}

}  // namespace greenloop::testing
