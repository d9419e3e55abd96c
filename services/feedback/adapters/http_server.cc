#include "services/feedback/adapters/http_server.h"

#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include <functional>
#include <map>

#include "fmt/format.h"
#include "services/feedback/adapters/web_assets.h"

namespace greenloop::feedback {
namespace {

using Handler = std::function<absl::StatusOr<std::string>(
    const std::string& body, const absl::StatusOr<std::string_view>& token)>;

std::string ErrorJson(const absl::Status& status) {
  // The same rule as ToGrpcStatus: internals never reach a client.
  const grpc::Status g = ToGrpcStatus(status);
  std::string message;
  for (char c : g.error_message()) {
    if (c == '"' || c == '\\') message += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    message += c;
  }
  return fmt::format(R"({{"code":"{}","message":"{}"}})", absl::StatusCodeToString(status.code()),
                     message);
}

// Parses `body` as Req (protobuf JSON), runs the RPC, prints the response.
template <typename Req, typename Resp>
Handler Route(FeedbackApi* api, std::string rpc,
              absl::StatusOr<Resp> (FeedbackQueue::*method)(const Caller&, const Req&)) {
  return [api, rpc = std::move(rpc), method](
             const std::string& body,
             const absl::StatusOr<std::string_view>& token) -> absl::StatusOr<std::string> {
    Req request;
    if (!body.empty()) {
      google::protobuf::util::JsonParseOptions options;
      options.ignore_unknown_fields = false;
      auto parsed = google::protobuf::util::JsonStringToMessage(body, &request, options);
      if (!parsed.ok()) {
        return absl::InvalidArgumentError(fmt::format("body is not a {} in JSON: {}",
                                                      Req::descriptor()->name(),
                                                      std::string(parsed.message())));
      }
    }
    GREENLOOP_ASSIGN_OR_RETURN(Resp response, api->Call(rpc, token, method, request));
    std::string json;
    google::protobuf::util::JsonPrintOptions print;
    print.preserve_proto_field_names = false;
    auto printed = google::protobuf::util::MessageToJsonString(response, &json, print);
    if (!printed.ok()) return absl::InternalError(std::string(printed.message()));
    return json;
  };
}

// The bearer token of an `Authorization: Bearer <token>` header, as rpc::BearerToken does it.
absl::StatusOr<std::string_view> HeaderToken(const httplib::Request& req) {
  if (req.get_header_value_count("Authorization") != 1) {
    return absl::UnauthenticatedError(
        "missing credentials: send one header 'Authorization: Bearer <token>'");
  }
  // A view into the request's own header, which outlives the call.
  std::string_view value = req.headers.find("Authorization")->second;
  if (value.size() < 7 || (value.substr(0, 7) != "Bearer " && value.substr(0, 7) != "bearer ")) {
    return absl::UnauthenticatedError(
        "malformed 'Authorization' header: expected 'Bearer <token>'");
  }
  value.remove_prefix(7);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return absl::UnauthenticatedError("empty bearer token");
  return value;
}

}  // namespace

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

FeedbackHttpServer::FeedbackHttpServer(FeedbackApi* api, HttpOptions options)
    : api_(api), options_(std::move(options)) {}

FeedbackHttpServer::~FeedbackHttpServer() { Stop(); }

absl::Status FeedbackHttpServer::Start() {
  const std::size_t colon = options_.address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        fmt::format("http address '{}' is not host:port", options_.address));
  }
  std::string host = options_.address.substr(0, colon);
  int port = 0;
  try {
    port = std::stoi(options_.address.substr(colon + 1));
  } catch (...) {
    return absl::InvalidArgumentError(
        fmt::format("http address '{}' is not host:port", options_.address));
  }
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);

  server_ = std::make_unique<httplib::Server>();
  const int threads = options_.threads;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(options_.max_body_bytes);

  auto routes = std::make_shared<std::map<std::string, Handler, std::less<>>>();
  FeedbackApi* api = api_;
  (*routes)["CreateCampaign"] = Route(api, "CreateCampaign", &FeedbackQueue::CreateCampaign);
  (*routes)["GetCampaign"] = Route(api, "GetCampaign", &FeedbackQueue::GetCampaign);
  (*routes)["ListCampaigns"] = Route(api, "ListCampaigns", &FeedbackQueue::ListCampaigns);
  (*routes)["CloseCampaign"] = Route(api, "CloseCampaign", &FeedbackQueue::CloseCampaign);
  (*routes)["EnqueueItems"] = Route(api, "EnqueueItems", &FeedbackQueue::EnqueueItems);
  (*routes)["Lease"] = Route(api, "Lease", &FeedbackQueue::Lease);
  (*routes)["Submit"] = Route(api, "Submit", &FeedbackQueue::Submit);
  (*routes)["Skip"] = Route(api, "Skip", &FeedbackQueue::Skip);
  (*routes)["Release"] = Route(api, "Release", &FeedbackQueue::Release);
  (*routes)["GetCampaignStats"] = Route(api, "GetCampaignStats", &FeedbackQueue::GetCampaignStats);
  (*routes)["ListMyRatings"] = Route(api, "ListMyRatings", &FeedbackQueue::ListMyRatings);
  (*routes)["CreateToken"] = Route(api, "CreateToken", &FeedbackQueue::CreateToken);
  (*routes)["RevokeToken"] = Route(api, "RevokeToken", &FeedbackQueue::RevokeToken);
  (*routes)["ListTokens"] = Route(api, "ListTokens", &FeedbackQueue::ListTokens);
  (*routes)["WhoAmI"] = Route(api, "WhoAmI", &FeedbackQueue::WhoAmI);

  server_->Post(R"(/api/v1/([A-Za-z]+))", [routes](const httplib::Request& req,
                                                   httplib::Response& res) {
    const std::string rpc = req.matches[1];
    auto it = routes->find(rpc);
    absl::StatusOr<std::string> out =
        it == routes->end() ? absl::StatusOr<std::string>(absl::NotFoundError(fmt::format(
                                  "no RPC '{}' in the JSON API (WatchVerdicts is gRPC only)", rpc)))
                            : it->second(req.body, HeaderToken(req));
    res.set_header("Cache-Control", "no-store");
    if (out.ok()) {
      res.status = 200;
      res.set_content(*out, "application/json");
    } else {
      res.status = HttpStatusFor(out.status().code());
      res.set_content(ErrorJson(out.status()), "application/json");
    }
  });
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server_->Get(R"(/([a-z_]*\.?[a-z]*))", [](const httplib::Request& req, httplib::Response& res) {
    std::string path = req.path == "/" ? "/index.html" : req.path;
    for (const WebAsset& asset : WebAssets()) {
      if (asset.path == path) {
        res.set_header("Content-Security-Policy",
                       "default-src 'self'; img-src 'self' data:; style-src 'self'");
        res.set_content(std::string(asset.body), std::string(asset.content_type).c_str());
        return;
      }
    }
    res.status = 404;
    res.set_content("not found\n", "text/plain");
  });
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        res.status = 500;
        res.set_content(R"({"code":"INTERNAL","message":"internal error"})", "application/json");
      });

  port_ =
      port == 0 ? server_->bind_to_any_port(host) : (server_->bind_to_port(host, port) ? port : -1);
  if (port_ <= 0) {
    port_ = 0;
    return absl::UnavailableError(
        fmt::format("cannot listen on {} (HTTP): address in use or not local", options_.address));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return absl::OkStatus();
}

void FeedbackHttpServer::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace greenloop::feedback
