// gRPC's own log lines, in greenloop's log format.
#pragma once

namespace greenloop::rpc {

/// Sends everything gRPC core logs (gpr_log) through greenloop::logging, so that one JSON line
/// format reaches the log shipper: a gRPC ERROR becomes logging::Error, INFO logging::Info, DEBUG
/// logging::Debug, each with fields source="grpc", file and line.
///
/// Which gRPC lines are produced is still gRPC's choice: GRPC_VERBOSITY (ERROR by default) and
/// GRPC_TRACE. gRPC's log function is process-wide; main calls this once, after logging::Init().
///
/// Thread-safety: safe to call at any time; gRPC may log from any thread, and logging is
/// thread-safe.
void RouteGrpcLogsToGreenloopLogging();

}  // namespace greenloop::rpc
