#include "common/grpc/handler_guard.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include "common/logging/logging.h"

namespace greenloop::rpc {

HandlerGuard::Counter HandlerGuard::CountIn(prometheus::Registry* registry,
                                            const std::string& metric) {
  if (registry == nullptr) return nullptr;
  prometheus::Family<prometheus::Counter>* family =
      &prometheus::BuildCounter()
           .Name(metric)
           .Help("Calls answered INTERNAL (a bug or a broken invariant; the log has the details)")
           .Register(*registry);
  return [family](std::string_view rpc) { family->Add({{"rpc", std::string(rpc)}}).Increment(); };
}

const absl::Status& HandlerGuard::Account(std::string_view rpc, const absl::Status& status) const {
  if (status.code() != absl::StatusCode::kInternal && status.code() != absl::StatusCode::kUnknown) {
    return status;
  }
  logging::Error("request failed",
                 {{"service", service_}, {"rpc", rpc}, {"error", status.ToString()}});
  if (count_) count_(rpc);
  return status;
}

}  // namespace greenloop::rpc
