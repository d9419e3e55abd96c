#include "services/feedback/adapters/http_server.h"

#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "common/grpc/status.h"
#include "fmt/format.h"
#include "services/feedback/adapters/web_assets.h"

namespace greenloop::feedback {
namespace {

using Handler = std::function<absl::StatusOr<std::string>(
    const std::string& body, const absl::StatusOr<std::string_view>& token)>;
using Routes = std::map<std::string, Handler, std::less<>>;

// On every response: no MIME sniffing, nothing but our own scripts and styles, never in a frame.
constexpr char kContentSecurityPolicy[] =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'";

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

void Reply(httplib::Response& res, const absl::StatusOr<std::string>& out) {
  if (out.ok()) {
    res.status = 200;
    res.set_content(*out, "application/json");
  } else {
    res.status = HttpStatusFor(out.status().code());
    res.set_content(ErrorJson(out.status()), "application/json");
  }
}

// An answer given before the body was read: the connection closes, so that the body's unread
// bytes are never parsed as the next request.
void RefuseUnread(httplib::Response& res, const absl::Status& status) {
  res.set_header("Connection", "close");
  Reply(res, status);
}

// One JSON API call. The RPC's name and the caller are checked before the body is read; a client
// throttled for failing to authenticate is refused before its token is looked up.
void ServeApi(FeedbackApi& api, AuthThrottle& throttle, const Routes& routes,
              std::size_t max_body_bytes, const httplib::Request& req, httplib::Response& res,
              const httplib::ContentReader& read_body) {
  res.set_header("Cache-Control", "no-store");
  const std::string rpc = req.matches[1];
  const auto route = routes.find(rpc);
  if (route == routes.end()) {
    return RefuseUnread(res, absl::NotFoundError(fmt::format(
                                 "no RPC '{}' in the JSON API (WatchVerdicts is gRPC only)", rpc)));
  }
  const absl::StatusOr<std::string_view> token = HeaderToken(req);
  if (!api.auth_disabled()) {
    const absl::Time now = absl::Now();
    if (!throttle.Allowed(req.remote_addr, now)) {
      api.CountThrottled();
      const auto wait = static_cast<long>(
          std::ceil(absl::ToDoubleSeconds(throttle.RetryAt(req.remote_addr, now) - now)));
      res.set_header("Retry-After", std::to_string(std::max(1L, wait)));
      return RefuseUnread(res, absl::ResourceExhaustedError(
                                   "too many failed authentications from this address; retry "
                                   "after the time in Retry-After"));
    }
    if (absl::StatusOr<Caller> caller = api.Admit(rpc, token); !caller.ok()) {
      if (absl::IsUnauthenticated(caller.status())) throttle.Failed(req.remote_addr, now);
      return RefuseUnread(res, caller.status());
    }
  }
  std::string body;
  if (!read_body([&body](const char* data, std::size_t n) {
        body.append(data, n);
        return true;
      })) {
    res.set_header("Connection", "close");
    res.status = 413;
    res.set_content(ErrorJson(absl::InvalidArgumentError(fmt::format(
                        "the body is larger than {} bytes (http.max_body_bytes), or incomplete",
                        max_body_bytes))),
                    "application/json");
    return;
  }
  Reply(res, route->second(body, token));
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
    : api_(api),
      options_(std::move(options)),
      throttle_({.failures_per_second = options_.auth_failures_per_second,
                 .burst = options_.auth_failure_burst}) {}

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

  if (options_.tls_cert_path.empty() != options_.tls_key_path.empty()) {
    return absl::InvalidArgumentError("set both tls.cert_path and tls.key_path, or neither");
  }
  if (!options_.tls_cert_path.empty()) {
    auto https = std::make_unique<httplib::SSLServer>(options_.tls_cert_path.c_str(),
                                                      options_.tls_key_path.c_str());
    if (!https->is_valid()) {
      return absl::InvalidArgumentError(
          fmt::format("cannot serve HTTPS with certificate '{}' and key '{}' (unreadable, or not "
                      "a PEM pair)",
                      options_.tls_cert_path, options_.tls_key_path));
    }
    server_ = std::move(https);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  const int threads = options_.threads;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(options_.max_body_bytes);
  server_->set_default_headers({{"X-Content-Type-Options", "nosniff"},
                                {"Content-Security-Policy", kContentSecurityPolicy},
                                {"Referrer-Policy", "no-referrer"}});

  auto routes = std::make_shared<Routes>();
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

  server_->Post(R"(/api/v1/([A-Za-z]+))",
                [this, routes](const httplib::Request& req, httplib::Response& res,
                               const httplib::ContentReader& read_body) {
                  ServeApi(*api_, throttle_, *routes, options_.max_body_bytes, req, res, read_body);
                });
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server_->Get(R"(/([a-z_]*\.?[a-z]*))", [](const httplib::Request& req, httplib::Response& res) {
    std::string path = req.path == "/" ? "/index.html" : req.path;
    for (const WebAsset& asset : WebAssets()) {
      if (asset.path == path) {
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
