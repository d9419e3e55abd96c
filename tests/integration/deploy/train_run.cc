// deploy_train_run: starts one small real training run on running greenloop-trainer workers over
// gRPC (StartRun on every rank) and waits until it ends. The deploy e2e test (stack_test.sh) uses
// it so that Prometheus sees a run's series from the real trainer and energy collector.
//
//   deploy_train_run --run_id=ID --energy=HOST:PORT --rendezvous_port=N
//                    [--max_train=10000] [--epochs=3] [--target=0.75] [--timeout_s=240]
//                    TRAINER_ADDRESS [TRAINER_ADDRESS ...]          (one per rank, rank 0 first)
//
// Exit 0 when every rank ends SUCCEEDED, 1 otherwise (the state and error of each rank printed).
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "greenloop/v1/trainer.grpc.pb.h"

namespace v1 = greenloop::v1;

int main(int argc, char** argv) {
  std::map<std::string, std::string> args = {{"run_id", "deploy-e2e"},     {"energy", ""},
                                             {"rendezvous_port", "0"},       {"max_train", "10000"},
                                             {"epochs", "3"},                {"target", "0.75"},
                                             {"timeout_s", "240"},           {"mode", "auto"}};
  std::vector<std::string> trainers;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto eq = a.find('=');
    if (a.starts_with("--") && eq != std::string::npos) {
      args[a.substr(2, eq - 2)] = a.substr(eq + 1);
    } else {
      trainers.push_back(a);
    }
  }
  if (trainers.empty() || args["energy"].empty()) {
    std::cerr << "usage: deploy_train_run --energy=HOST:PORT [--key=value ...] TRAINER...\n";
    return 2;
  }

  v1::RunConfig config;
  config.set_dataset(v1::DATASET_FASHION_MNIST);
  config.set_max_train_samples(std::stoull(args["max_train"]));
  config.mutable_label_noise()->set_rate(0.2);
  config.mutable_label_noise()->set_kind(v1::LABEL_NOISE_KIND_SYMMETRIC);
  config.mutable_label_noise()->set_seed(7);
  config.set_model_kind(v1::MODEL_KIND_CNN);
  config.set_batch_size(32);
  config.set_learning_rate(0.002);
  config.set_seed(7);
  config.set_eval_every_steps(50);
  config.mutable_budget()->set_max_epochs(static_cast<std::uint32_t>(std::stoul(args["epochs"])));
  config.set_target_accuracy(std::stod(args["target"]));
  config.set_mode(args["mode"] == "baseline" ? v1::MODE_BASELINE : v1::MODE_AUTO);
  config.set_select_every_steps(20);
  config.set_candidates_per_selection(16);
  config.set_energy_endpoint(args["energy"]);
  config.set_experiment_id("deploy-e2e");
  config.set_projection_warmup_steps(20);

  const auto world = static_cast<std::uint32_t>(trainers.size());
  std::vector<std::unique_ptr<v1::TrainerService::Stub>> stubs;
  for (std::uint32_t rank = 0; rank < world; ++rank) {
    stubs.push_back(v1::TrainerService::NewStub(
        grpc::CreateChannel(trainers[rank], grpc::InsecureChannelCredentials())));
    v1::StartRunRequest request;
    request.set_run_id(args["run_id"]);
    *request.mutable_config() = config;
    request.set_rank(rank);
    request.set_world_size(world);
    if (world > 1) {
      request.set_rendezvous_host("127.0.0.1");
      request.set_rendezvous_port(static_cast<std::uint32_t>(std::stoul(args["rendezvous_port"])));
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::StartRunResponse response;
    const grpc::Status status = stubs.back()->StartRun(&context, request, &response);
    if (!status.ok()) {
      std::cerr << "StartRun rank " << rank << " on " << trainers[rank]
                << " failed: " << status.error_message() << "\n";
      return 1;
    }
    std::cout << "started rank " << rank << " of run " << args["run_id"] << " on "
              << trainers[rank] << "\n";
  }

  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(std::stoi(args["timeout_s"]));
  bool all_ok = true;
  for (std::uint32_t rank = 0; rank < world; ++rank) {
    v1::Run run;
    while (true) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      v1::GetRunRequest request;
      request.set_run_id(args["run_id"]);
      v1::GetRunResponse response;
      const grpc::Status status = stubs[rank]->GetRun(&context, request, &response);
      if (status.ok()) run = response.run();
      const bool ended = run.state() == v1::RUN_STATE_SUCCEEDED ||
                         run.state() == v1::RUN_STATE_FAILED ||
                         run.state() == v1::RUN_STATE_STOPPED;
      if (ended) break;
      if (std::chrono::steady_clock::now() > deadline) {
        std::cerr << "rank " << rank << ": run did not end in time (state "
                  << v1::RunState_Name(run.state()) << ")\n";
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    std::cout << "rank " << rank << ": " << v1::RunState_Name(run.state()) << " "
              << v1::FinishReason_Name(run.finish_reason()) << " steps=" << run.progress().step()
              << " accuracy=" << run.best_eval_accuracy()
              << " energy_joules=" << run.progress().energy_joules()
              << (run.error_message().empty() ? "" : " error=" + run.error_message()) << "\n";
    all_ok = all_ok && run.state() == v1::RUN_STATE_SUCCEEDED;
  }
  return all_ok ? 0 : 1;
}
