#include "tools/greenloop/commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <string>

#include "common/grpc/channel.h"
#include "common/grpc/status.h"
#include "common/pg/pool.h"
#include "common/status/status.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "src/proto/grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tools/greenloop/experiment_commands.h"
#include "tools/greenloop/feedback_commands.h"
#include "tools/greenloop/study_command.h"

#ifndef GREENLOOP_VERSION
#define GREENLOOP_VERSION "dev"
#endif

namespace greenloop::cli {
namespace {

constexpr std::string_view kUsage =
    "usage: greenloop <command> [--key=value ...]\n"
    "\n"
    "commands:\n"
    "  rpc health --target HOST:PORT [--service NAME]  gRPC health of a service\n"
    "  rpc list --target HOST:PORT                     services it serves (reflection)\n"
    "  db status [--pg.url URL]                        migrations applied per component\n"
    "  experiment run SPEC.yaml                        compare modes, write the report\n"
    "  experiment sweep SPEC.yaml [--raters=3,6,9]     vary the crowd: energy saved vs human time\n"
    "  report EXPERIMENT|latest                        rebuild an experiment's report\n"
    "  predict --spec SPEC [--calibrate]               estimate a run's energy before it runs\n"
    "  study SPEC.yaml --models=cnn,mlp,...            Green-ML study: energy vs model size\n"
    "  token create --role R --name NAME               create a bearer token (admin)\n"
    "  token revoke --id ID | token list               revoke or list tokens (admin)\n"
    "  rate [--campaign ID]                            rate items in the terminal (rater)\n"
    "  version                                         print the version\n"
    "\n"
    "`greenloop <command> --help` lists a command's keys; each can also come from a YAML file\n"
    "(--config FILE) or a GREENLOOP_* environment variable.\n";

struct RpcArgs {
  std::string target;
  std::string service;
  std::chrono::milliseconds timeout{5000};
};

void AddRpcKeys(config::Schema& schema, RpcArgs& a) {
  schema.Add("target", &a.target, "the server, HOST:PORT")
      .Add("timeout", &a.timeout, "deadline of the call", {.min = 1})
      .Check([&a]() -> absl::Status {
        if (a.target.empty()) {
          return absl::InvalidArgumentError(
              "--target is required (HOST:PORT of a greenloop service, e.g. 127.0.0.1:7101)");
        }
        return absl::OkStatus();
      });
}

}  // namespace

std::optional<int> LoadArgs(config::Schema& schema, std::string_view program,
                            const std::vector<std::string_view>& args,
                            const config::Environment& env, std::ostream& out, std::ostream& err,
                            std::string_view extra_help) {
  std::vector<std::string> owned = {std::string(program)};
  for (std::string_view a : args) owned.emplace_back(a);
  std::vector<const char*> argv;
  for (const std::string& s : owned) argv.push_back(s.c_str());
  if (absl::Status s = schema.Load(static_cast<int>(argv.size()), argv.data(), env); !s.ok()) {
    err << program << ": " << s.message() << "\n";
    return kExitUsage;
  }
  if (schema.help_requested()) {
    out << schema.Usage() << extra_help;
    return kExitOk;
  }
  return std::nullopt;
}

int Report(std::ostream& err, std::string_view program, const absl::Status& status) {
  err << program << ": " << status.message() << "\n";
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    case absl::StatusCode::kInvalidArgument:
      return kExitUsage;
    default:
      return kExitFailed;
  }
}

int RpcHealth(const std::vector<std::string_view>& args, const config::Environment& env,
              std::ostream& out, std::ostream& err) {
  constexpr std::string_view kProgram = "greenloop rpc health";
  RpcArgs a;
  config::Schema schema{std::string(kProgram)};
  AddRpcKeys(schema, a);
  schema.Add("service", &a.service, "service to ask about; empty asks about the whole server");
  if (auto code = LoadArgs(schema, kProgram, args, env, out, err)) return *code;

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::CreateChannel(a.target);
  if (!channel.ok()) return Report(err, kProgram, channel.status());
  auto stub = grpc::health::v1::Health::NewStub(*channel);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(a.service);
  grpc::health::v1::HealthCheckResponse response;
  auto ctx = rpc::NewClientContext(a.timeout);
  const grpc::Status status = stub->Check(ctx.get(), request, &response);
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
    err << kProgram << ": " << a.target << " does not serve '" << a.service << "'\n";
    return kExitFailed;
  }
  if (!status.ok()) {
    return Report(
        err, kProgram,
        absl::Status(FromGrpcStatus(status).code(),
                     fmt::format("cannot reach {}: {}", a.target, status.error_message())));
  }
  out << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()) << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                             : kExitFailed;
}

int RpcList(const std::vector<std::string_view>& args, const config::Environment& env,
            std::ostream& out, std::ostream& err) {
  constexpr std::string_view kProgram = "greenloop rpc list";
  RpcArgs a;
  config::Schema schema{std::string(kProgram)};
  AddRpcKeys(schema, a);
  if (auto code = LoadArgs(schema, kProgram, args, env, out, err)) return *code;

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = rpc::CreateChannel(a.target);
  if (!channel.ok()) return Report(err, kProgram, channel.status());
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(*channel);
  auto ctx = rpc::NewClientContext(a.timeout);
  auto stream = stub->ServerReflectionInfo(ctx.get());
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  stream->Write(request);
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  std::vector<std::string> names;
  while (stream->Read(&response)) {
    if (response.has_error_response()) {
      err << kProgram << ": reflection error: " << response.error_response().error_message()
          << "\n";
      return kExitFailed;
    }
    for (const auto& s : response.list_services_response().service()) names.push_back(s.name());
  }
  const grpc::Status status = stream->Finish();
  if (!status.ok()) {
    return Report(
        err, kProgram,
        absl::Status(FromGrpcStatus(status).code(), fmt::format("cannot list services of {}: {}",
                                                                a.target, status.error_message())));
  }
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) out << n << "\n";
  return kExitOk;
}

int DbStatus(const std::vector<std::string_view>& args, const config::Environment& env,
             std::ostream& out, std::ostream& err) {
  constexpr std::string_view kProgram = "greenloop db status";
  std::string url;
  config::Schema schema{std::string(kProgram)};
  schema.Add("pg.url", &url, "PostgreSQL connection string", {.secret = true})
      .Check([&url]() -> absl::Status {
        if (url.empty()) {
          return absl::InvalidArgumentError(
              "pg.url is required (--pg.url, GREENLOOP_PG_URL, or pg.url in --config FILE)");
        }
        return absl::OkStatus();
      });
  if (auto code = LoadArgs(schema, kProgram, args, env, out, err)) return *code;

  absl::StatusOr<std::unique_ptr<pg::Pool>> pool = pg::Pool::Create({.url = url, .max_size = 1});
  if (!pool.ok()) return Report(err, kProgram, pool.status());

  struct Row {
    std::string component, name, applied_at;
    int version;
  };
  std::vector<Row> rows;
  const absl::Status status = (*pool)->Transact([&rows](pqxx::work& tx) -> absl::Status {
    if (tx.exec1("SELECT to_regclass('schema_migrations') IS NULL")[0].as<bool>()) {
      return absl::OkStatus();
    }
    for (const auto& r :
         tx.exec("SELECT component, version, name, "
                 "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                 "FROM schema_migrations ORDER BY component, version")) {
      rows.push_back(
          {r[0].as<std::string>(), r[2].as<std::string>(), r[3].as<std::string>(), r[1].as<int>()});
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return Report(err, kProgram, status);
  out << "database " << (*pool)->target() << "\n";
  if (rows.empty()) {
    out << "no migrations applied\n";
    return kExitOk;
  }
  out << fmt::format("{:<12} {:>7}  {:<32} {}\n", "component", "version", "name", "applied_at");
  for (const Row& r : rows) {
    out << fmt::format("{:<12} {:>7}  {:<32} {}\n", r.component, r.version, r.name, r.applied_at);
  }
  return kExitOk;
}

int Main(const std::vector<std::string_view>& args, const config::Environment& env,
         std::ostream& out, std::ostream& err) {
  using Command = std::function<int(const std::vector<std::string_view>&,
                                    const config::Environment&, std::ostream&, std::ostream&)>;
  const std::map<std::string, Command, std::less<>> commands = {
      {"rpc health", RpcHealth},
      {"rpc list", RpcList},
      {"db status", DbStatus},
      {"experiment run", ExperimentRun},
      {"experiment sweep", ExperimentSweep},
      {"experiment report", ExperimentReport},
      {"token create", TokenCreate},
      {"token revoke", TokenRevoke},
      {"token list", TokenList}};
  // One-word commands.
  const std::map<std::string, Command, std::less<>> single = {
      {"report", ExperimentReport},
      {"predict", Predict},
      {"study", Study},
      {"rate", [](const std::vector<std::string_view>& a, const config::Environment& e,
                  std::ostream& o, std::ostream& r) { return Rate(a, e, std::cin, o, r); }}};

  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    (args.empty() ? err : out) << kUsage;
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] == "version" || args[0] == "--version") {
    out << "greenloop " << GREENLOOP_VERSION << "\n";
    return kExitOk;
  }
  if (auto it = single.find(args[0]); it != single.end()) {
    return it->second({args.begin() + 1, args.end()}, env, out, err);
  }
  if (args.size() >= 2) {
    const std::string name = fmt::format("{} {}", args[0], args[1]);
    if (auto it = commands.find(name); it != commands.end()) {
      return it->second({args.begin() + 2, args.end()}, env, out, err);
    }
  }
  err << "greenloop: unknown command '"
      << fmt::format("{}", fmt::join(args.begin(),
                                     args.begin() + std::min<std::size_t>(2, args.size()), " "))
      << "' (greenloop --help lists the commands)\n";
  return kExitUsage;
}

}  // namespace greenloop::cli
