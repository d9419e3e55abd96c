#include "tools/greenloop/feedback_commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "common/grpc/channel.h"
#include "common/grpc/status.h"
#include "common/status/status.h"
#include "greenloop/v1/feedback.grpc.pb.h"
#include "tools/greenloop/commands.h"

namespace greenloop::cli {
namespace {

using namespace std::chrono_literals;

// The feature grid as a table of cell numbers, for a rater in a terminal. A two-panel picture (a
// rule's, or an item's whose grid has evidence_panel) has the item, or the class's mean image, on
// its left half and the model's evidence on the right: the numbers are the left half's cells.
std::string CellTable(std::uint32_t rows, std::uint32_t cols, bool two_panels) {
  std::string out = two_panels
                        ? "cells of the left picture (the right one: where the model looks):\n"
                        : "cells of the picture:\n";
  for (std::uint32_t r = 0; r < rows; ++r) {
    out += " ";
    for (std::uint32_t c = 0; c < cols; ++c) out += fmt::format(" {:>3}", r * cols + c);
    out += "\n";
  }
  return out + "  type the cells the model should ignore (e.g. 0 6 42), '-' for none\n";
}

// A text feature item's words (its payload, one per line), numbered as its cells.
std::string WordTable(const std::string& text) {
  std::string out = "words:\n";
  std::uint32_t cell = 0;
  std::size_t begin = 0;
  while (begin < text.size()) {
    const std::size_t end = std::min(text.find('\n', begin), text.size());
    if (end > begin) out += fmt::format("  {:>3}  {}\n", cell++, text.substr(begin, end - begin));
    begin = end + 1;
  }
  return out + "  type the numbers of the words the model should ignore (e.g. 0 3), '-' for none\n";
}

// A line of cell numbers ("0 6 42", "0,6") or "-" (none) as a feature-mask answer; nullopt for
// anything else. The server checks the cells against the grid.
std::optional<v1::Answer> CellsAnswer(const std::string& line) {
  v1::Answer a;
  a.mutable_feature_mask();
  if (line == "-") return a;
  std::uint64_t value = 0;
  bool digits = false;
  for (char ch : line + " ") {
    if (ch >= '0' && ch <= '9') {
      value = std::min<std::uint64_t>(value * 10 + static_cast<std::uint64_t>(ch - '0'), 1u << 20);
      digits = true;
    } else if (ch == ' ' || ch == ',') {
      if (digits) a.mutable_feature_mask()->add_irrelevant_cells(static_cast<std::uint32_t>(value));
      value = 0;
      digits = false;
    } else {
      return std::nullopt;
    }
  }
  if (a.feature_mask().irrelevant_cells().empty()) return std::nullopt;
  return a;
}

struct Connection {
  std::string server = "127.0.0.1:7102";
  std::string token;
  std::chrono::milliseconds timeout{10'000};
};

void AddConnectionKeys(config::Schema& schema, Connection& c) {
  schema.Add("server", &c.server, "feedback service gRPC address, HOST:PORT")
      .Add("token", &c.token, "bearer token (GREENLOOP_TOKEN)", {.secret = true})
      .Add("timeout", &c.timeout, "deadline of each call", {.min = 1})
      .Check([&c]() -> absl::Status {
        if (c.token.empty()) {
          return absl::InvalidArgumentError("--token is required (or GREENLOOP_TOKEN)");
        }
        return absl::OkStatus();
      });
}

int Fail(std::ostream& err, std::string_view program, const grpc::Status& status) {
  return Report(err, program, FromGrpcStatus(status));
}

std::unique_ptr<v1::FeedbackService::Stub> Stub(const Connection& c) {
  return v1::FeedbackService::NewStub(*rpc::CreateChannel(c.server));
}

std::string Time(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0) return "-";
  std::time_t s = t.seconds();
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&s));
  return buf;
}

}  // namespace

int TokenCreate(const std::vector<std::string_view>& args, const config::Environment& env,
                std::ostream& out, std::ostream& err) {
  constexpr std::string_view kProgram = "greenloop token create";
  Connection c;
  std::string role, name;
  std::chrono::milliseconds expires{0};
  config::Schema schema{std::string(kProgram)};
  AddConnectionKeys(schema, c);
  schema.Add("role", &role, "rater, worker or admin", {.one_of = {"rater", "worker", "admin"}})
      .Add("name", &name, "who or what the token is for, 1 to 64 characters")
      .Add("expires", &expires, "lifetime, e.g. 720h; 0 never expires", {.min = 0})
      .Check([&]() -> absl::Status {
        if (role.empty() || name.empty()) {
          return absl::InvalidArgumentError("--role and --name are required");
        }
        return absl::OkStatus();
      });
  if (auto code = LoadArgs(schema, kProgram, args, env, out, err)) return *code;
  v1::CreateTokenRequest req;
  req.set_role(role == "rater"    ? v1::ROLE_RATER
               : role == "worker" ? v1::ROLE_WORKER
                                  : v1::ROLE_ADMIN);
  req.set_name(name);
  if (expires.count() > 0) {
    const auto at = std::chrono::system_clock::now() + expires;
    req.mutable_expire_time()->set_seconds(
        std::chrono::duration_cast<std::chrono::seconds>(at.time_since_epoch()).count());
  }
  v1::CreateTokenResponse resp;
  auto ctx = rpc::NewClientContext(c.timeout, c.token);
  if (grpc::Status s = Stub(c)->CreateToken(ctx.get(), req, &resp); !s.ok()) {
    return Fail(err, kProgram, s);
  }
  out << resp.token() << "\n";
  err << fmt::format("token_id {} ({} '{}'); the secret above is shown only now\n",
                     resp.info().token_id(), role, name);
  return kExitOk;
}

int TokenRevoke(const std::vector<std::string_view>& args, const config::Environment& env,
                std::ostream& out, std::ostream& err) {
  constexpr std::string_view kProgram = "greenloop token revoke";
  Connection c;
  std::string id;
  config::Schema schema{std::string(kProgram)};
  AddConnectionKeys(schema, c);
  schema.Add("id", &id, "token_id to revoke (greenloop token list)");
  if (auto code = LoadArgs(schema, kProgram, args, env, out, err)) return *code;
  v1::RevokeTokenRequest req;
  req.set_token_id(id);
  v1::RevokeTokenResponse resp;
  auto ctx = rpc::NewClientContext(c.timeout, c.token);
  if (grpc::Status s = Stub(c)->RevokeToken(ctx.get(), req, &resp); !s.ok()) {
    return Fail(err, kProgram, s);
  }
  out << fmt::format("revoked {} '{}' at {}\n", resp.info().token_id(), resp.info().name(),
                     Time(resp.info().revoke_time()));
  return kExitOk;
}

int TokenList(const std::vector<std::string_view>& args, const config::Environment& env,
              std::ostream& out, std::ostream& err) {
  constexpr std::string_view kProgram = "greenloop token list";
  Connection c;
  bool all = false;
  config::Schema schema{std::string(kProgram)};
  AddConnectionKeys(schema, c);
  schema.Add("all", &all, "include revoked and expired tokens");
  if (auto code = LoadArgs(schema, kProgram, args, env, out, err)) return *code;
  auto stub = Stub(c);
  v1::ListTokensRequest req;
  req.set_include_revoked(all);
  req.mutable_page()->set_page_size(500);
  out << fmt::format("{:>8}  {:<12} {:<10} {:<24} {:<20} {}\n", "id", "role", "prefix", "name",
                     "last_use", "revoked");
  do {
    v1::ListTokensResponse resp;
    auto ctx = rpc::NewClientContext(c.timeout, c.token);
    if (grpc::Status s = stub->ListTokens(ctx.get(), req, &resp); !s.ok()) {
      return Fail(err, kProgram, s);
    }
    for (const v1::TokenInfo& t : resp.tokens()) {
      out << fmt::format("{:>8}  {:<12} {:<10} {:<24} {:<20} {}\n", t.token_id(),
                         v1::Role_Name(t.role()).substr(5), t.token_prefix(), t.name(),
                         Time(t.last_use_time()), Time(t.revoke_time()));
    }
    req.mutable_page()->set_page_token(resp.next_page_token());
  } while (!req.page().page_token().empty());
  return kExitOk;
}

int Rate(const std::vector<std::string_view>& args, const config::Environment& env,
         std::istream& in, std::ostream& out, std::ostream& err) {
  constexpr std::string_view kProgram = "greenloop rate";
  Connection c;
  std::string campaign;
  bool exit_when_empty = false;
  std::string image_dir = std::filesystem::temp_directory_path().string();
  config::Schema schema{std::string(kProgram)};
  AddConnectionKeys(schema, c);
  schema.Add("campaign", &campaign, "campaign to rate; empty: any open campaign")
      .Add("exit_when_empty", &exit_when_empty, "exit 0 when nothing is left instead of waiting")
      .Add("image_dir", &image_dir, "where item images are written for viewing");
  if (auto code = LoadArgs(schema, kProgram, args, env, out, err)) return *code;
  auto stub = Stub(c);
  {
    v1::WhoAmIResponse me;
    auto ctx = rpc::NewClientContext(c.timeout, c.token);
    if (grpc::Status s = stub->WhoAmI(ctx.get(), {}, &me); !s.ok()) return Fail(err, kProgram, s);
    if (me.info().role() != v1::ROLE_RATER) {
      err << kProgram << ": token '" << me.info().name() << "' has role "
          << v1::Role_Name(me.info().role()) << "; rating needs a rater token\n";
      return kExitUsage;
    }
    out << "rating as " << me.info().name() << " (q quits, s skips)\n";
  }
  int rated = 0;
  for (;;) {
    v1::LeaseRequest lr;
    lr.set_campaign_id(campaign);
    lr.set_max_items(1);
    v1::LeaseResponse leased;
    auto ctx = rpc::NewClientContext(c.timeout, c.token);
    if (grpc::Status s = stub->Lease(ctx.get(), lr, &leased); !s.ok()) {
      return Fail(err, kProgram, s);
    }
    if (leased.items_size() == 0) {
      if (exit_when_empty) break;
      out << "nothing to rate; waiting\n";
      std::this_thread::sleep_for(std::chrono::milliseconds(leased.retry_after_ms()));
      continue;
    }
    const v1::LeasedItem& item = leased.items(0);
    const v1::Question& q = item.question();
    out << "\n[" << item.campaign_id() << " item " << item.item_id() << "]\n";
    if (!q.instructions().empty()) out << q.instructions() << "\n";
    const bool features =
        q.kind() == v1::QUESTION_KIND_FEATURE_MASK || q.kind() == v1::QUESTION_KIND_FEATURE_RULE;
    if (features && item.payload().has_text()) {
      out << WordTable(item.payload().text());
    } else if (item.payload().has_png()) {
      const std::string path = fmt::format("{}/greenloop-item-{}.png", image_dir, item.item_id());
      std::ofstream(path, std::ios::binary) << item.payload().png();
      out << "image: " << path << "\n";
    } else {
      const std::string& text = item.payload().text();
      out << text.substr(0, 2000) << (text.size() > 2000 ? "\n[…]\n" : "\n");
    }
    if (q.has_model_prediction() &&
        q.model_prediction().label() < static_cast<std::uint32_t>(q.labels_size())) {
      out << fmt::format("model says: {} ({:.0f} %)\n",
                         q.labels(static_cast<int>(q.model_prediction().label())).display_name(),
                         100 * q.model_prediction().confidence());
    }
    out << q.prompt() << "\n";
    std::vector<std::pair<std::string, v1::Answer>> keys;
    v1::Answer cells_answer;
    if (features) {  // a text item's words were numbered above
      if (item.payload().has_png()) {
        out << CellTable(
            q.feature_grid().rows(), q.feature_grid().cols(),
            q.kind() == v1::QUESTION_KIND_FEATURE_RULE || q.feature_grid().evidence_panel());
      }
    } else if (q.kind() == v1::QUESTION_KIND_LABEL_CHOICE) {
      for (int i = 0; i < q.labels_size(); ++i) {
        v1::Answer a;
        a.set_label(static_cast<std::uint32_t>(i));
        const std::string key =
            q.labels(i).shortcut().empty() ? std::to_string((i + 1) % 10) : q.labels(i).shortcut();
        keys.emplace_back(key, a);
        out << fmt::format("  {}) {}\n", key, q.labels(i).display_name());
      }
    } else {
      v1::Answer yes, no;
      if (q.kind() == v1::QUESTION_KIND_RELEVANCE) {
        yes.set_relevant(true);
        no.set_relevant(false);
      } else {
        yes.set_label_correct(true);
        no.set_label_correct(false);
      }
      keys = {{"y", yes}, {"n", no}};
      out << "  y) yes   n) no\n";
    }
    const auto shown = std::chrono::steady_clock::now();
    std::string line;
    const v1::Answer* answer = nullptr;
    bool skip = false;
    for (;;) {
      out << "> " << std::flush;
      if (!std::getline(in, line) || line == "q") break;
      if (line == "s") {
        skip = true;
        break;
      }
      for (const auto& [key, a] : keys) {
        if (key == line) answer = &a;
      }
      if (features) {
        if (std::optional<v1::Answer> a = CellsAnswer(line)) {
          cells_answer = *a;
          answer = &cells_answer;
        }
      }
      if (answer != nullptr) break;
      out << "unknown key '" << line << "'\n";
    }
    if (answer == nullptr && !skip) {  // q or end of input: give the item back
      v1::ReleaseRequest rel;
      rel.set_lease_id(item.lease_id());
      v1::ReleaseResponse rr;
      auto rc = rpc::NewClientContext(c.timeout, c.token);
      stub->Release(rc.get(), rel, &rr);
      break;
    }
    grpc::Status s;
    auto sc = rpc::NewClientContext(c.timeout, c.token);
    if (skip) {
      v1::SkipRequest sr;
      sr.set_lease_id(item.lease_id());
      sr.set_reason(v1::SKIP_REASON_UNSURE);
      v1::SkipResponse resp;
      s = stub->Skip(sc.get(), sr, &resp);
      if (s.ok()) out << "skipped\n";
    } else {
      v1::SubmitRequest sr;
      sr.set_lease_id(item.lease_id());
      *sr.mutable_answer() = *answer;
      sr.set_seconds_spent(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - shown).count());
      v1::SubmitResponse resp;
      s = stub->Submit(sc.get(), sr, &resp);
      if (s.ok()) out << "saved (rating " << resp.rating_id() << ")\n";
      if (s.ok()) ++rated;
    }
    if (!s.ok() && s.error_code() != grpc::StatusCode::FAILED_PRECONDITION) {
      return Fail(err, kProgram, s);
    }
    if (!s.ok()) out << "too late: " << s.error_message() << "\n";
  }
  out << "rated " << rated << " item(s)\n";
  return kExitOk;
}

}  // namespace greenloop::cli
