#include "common/grpc/grpc_logging.h"

#include <grpc/support/log.h>

#include <string_view>

#include "common/logging/logging.h"

namespace greenloop::rpc {
namespace {

void LogToGreenloop(gpr_log_func_args* args) {
  const std::string_view message = args->message != nullptr ? args->message : "";
  const std::string_view file = args->file != nullptr ? args->file : "";
  const logging::Fields fields = {{"source", "grpc"}, {"file", file}, {"line", args->line}};
  switch (args->severity) {
    case GPR_LOG_SEVERITY_DEBUG:
      logging::Debug(message, fields);
      break;
    case GPR_LOG_SEVERITY_INFO:
      logging::Info(message, fields);
      break;
    case GPR_LOG_SEVERITY_ERROR:
      logging::Error(message, fields);
      break;
  }
}

}  // namespace

void RouteGrpcLogsToGreenloopLogging() { gpr_set_log_function(&LogToGreenloop); }

}  // namespace greenloop::rpc
