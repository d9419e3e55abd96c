// Data parallelism across processes and nodes: the Collective port over LibTorch's c10d, with a
// TCPStore rendezvous hosted by rank 0 and a ProcessGroupGloo for the collectives.
//
// ConnectGloo() is what a rank calls once per run, after StartRun and before training:
//
//   rank 0 binds a TCPStore on rendezvous_port; every rank connects to it, announces itself, and
//   waits until exactly world_size ranks have arrived (each rank index once). Then the ranks build
//   a ProcessGroupGloo over that store. Collectives time out after `collective_timeout`, so a rank
//   that dies mid-run makes the others fail with UNAVAILABLE naming the operation, not hang.
//
// Errors: DEADLINE_EXCEEDED when fewer than world_size ranks arrive within `rendezvous_timeout`
// (the message says how many did); INVALID_ARGUMENT when a rank index arrives twice or more ranks
// than world_size arrive; UNAVAILABLE when the store cannot be bound or reached.
//
// Thread-safety: a Collective is used by the training thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/trainer/core/ports.h"

namespace greenloop::trainer {

struct GlooOptions {
  std::string run_id;           // keys of the store are prefixed with it
  std::string rendezvous_host;  // rank 0's address
  std::uint16_t rendezvous_port = 0;
  std::uint32_t rank = 0;
  std::uint32_t world_size = 1;
  // Network interface Gloo uses for its own connections (e.g. "eth0"); empty: the address
  // rendezvous_host resolves to when it is a loopback address, the host name's otherwise.
  std::string interface;
  std::chrono::milliseconds rendezvous_timeout{60000};
  std::chrono::milliseconds collective_timeout{30000};
};

// Meets the other ranks and returns the collective. See the header comment for errors.
absl::StatusOr<std::unique_ptr<Collective>> ConnectGloo(const GlooOptions& options);

}  // namespace greenloop::trainer
