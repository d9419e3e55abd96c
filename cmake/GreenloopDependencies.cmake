# Every third-party dependency, found once. All come from Debian bookworm packages
# (deploy/local/bootstrap.sh installs them); a GPU node points CMAKE_PREFIX_PATH at a CUDA LibTorch.
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
# civetweb, the HTTP server prometheus-cpp serves /metrics with: its start-up log (metrics_server.cc).
find_package(civetweb CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(fmt CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(GTest CONFIG REQUIRED)
pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx)
# libpq itself, for PQconninfoParse (libpqxx.pc does not pass -lpq on).
pkg_check_modules(PQ REQUIRED IMPORTED_TARGET libpq)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)

# The grpc.health.v1 and reflection protos ship in Debian's grpc-proto package; tests generate
# client stubs from them to talk to our servers the way grpc_cli or a Kubernetes probe would.
find_path(GREENLOOP_GRPC_PROTO_DIR grpc/health/v1/health.proto
          PATHS /usr/share/grpc-proto REQUIRED
          DOC "Directory holding grpc/health/v1/health.proto (Debian package grpc-proto)")
