// deploy_train_run: starts one small real training run on running greenloop-trainer workers over
// gRPC (StartRun on every rank) and waits until it ends. The deploy e2e test (stack_test.sh) uses
// it so that Prometheus sees a run's series from the real trainer and energy collector.
//
//   deploy_train_run --run_id=ID --energy=HOST:PORT --rendezvous_port=N
//                    [--max_train=10000] [--epochs=3] [--target=0.75] [--timeout_s=240]
//                    [--feedback=HOST:PORT]   (HITL on a new campaign of its own, rated by
//                    [--admin_token=TOKEN]     simulated raters: one anonymous rater when the
//                                              service runs without auth, two raters with tokens
//                                              of their own, each item rated twice, with one)
//                    TRAINER_ADDRESS [TRAINER_ADDRESS ...]          (one per rank, rank 0 first)
//
// Exit 0 when every rank ends SUCCEEDED, 1 otherwise (the state and error of each rank printed).
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "greenloop/v1/feedback.grpc.pb.h"
#include "greenloop/v1/trainer.grpc.pb.h"

namespace v1 = greenloop::v1;

int main(int argc, char** argv) {
  std::map<std::string, std::string> args = {{"run_id", "deploy-e2e"}, {"energy", ""},
                                             {"rendezvous_port", "0"}, {"max_train", "10000"},
                                             {"epochs", "3"},          {"target", "0.75"},
                                             {"timeout_s", "240"},     {"mode", "auto"},
                                             {"feedback", ""},         {"admin_token", ""}};
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
  // With a feedback service: a HITL run on a campaign of its own, rated by simulated raters.
  const std::string admin = args["admin_token"];
  auto authorize = [](grpc::ClientContext& context, const std::string& token) {
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  };
  std::vector<std::string> rater_tokens;
  std::unique_ptr<v1::FeedbackService::Stub> feedback;
  const std::string campaign = args["run_id"] + "-campaign";
  if (!args["feedback"].empty()) {
    feedback = v1::FeedbackService::NewStub(
        grpc::CreateChannel(args["feedback"], grpc::InsecureChannelCredentials()));
    v1::CreateCampaignRequest request;
    request.set_campaign_id(campaign);
    v1::CampaignSpec* spec = request.mutable_spec();
    spec->set_display_name("deploy e2e");
    spec->set_run_id(args["run_id"]);
    spec->set_question_kind(v1::QUESTION_KIND_LABEL_CHECK);
    for (const char* name : {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                             "Shirt", "Sneaker", "Bag", "Ankle boot"}) {
      spec->add_labels()->set_name(name);
    }
    spec->set_ratings_per_item(admin.empty() ? 1 : 2);
    spec->set_lease_ttl_seconds(60);
    grpc::ClientContext context;
    authorize(context, admin);
    v1::CreateCampaignResponse response;
    const grpc::Status status = feedback->CreateCampaign(&context, request, &response);
    if (!status.ok()) {
      std::cerr << "CreateCampaign failed: " << status.error_message() << "\n";
      return 1;
    }
    if (admin.empty()) {
      rater_tokens.push_back("");  // anonymous: the service runs without auth
    } else {
      for (const char* name : {"deploy-e2e-rater-a", "deploy-e2e-rater-b"}) {
        grpc::ClientContext token_context;
        authorize(token_context, admin);
        v1::CreateTokenRequest token_request;
        token_request.set_role(v1::ROLE_RATER);
        token_request.set_name(name);
        v1::CreateTokenResponse token;
        const grpc::Status s = feedback->CreateToken(&token_context, token_request, &token);
        if (!s.ok()) {
          std::cerr << "CreateToken failed: " << s.error_message() << "\n";
          return 1;
        }
        rater_tokens.push_back(token.token());
      }
    }
    config.set_mode(v1::MODE_HITL);
    config.mutable_feedback()->set_endpoint(args["feedback"]);
    config.mutable_feedback()->set_campaign_id(campaign);
  }
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
    std::cout << "started rank " << rank << " of run " << args["run_id"] << " on " << trainers[rank]
              << "\n";
  }

  // The raters: each leases what the run enqueues and answers every item until the run ends (the
  // first says "right" to every item, the second alternates; every tenth item is skipped).
  std::atomic<bool> done{false};
  std::atomic<int> rated{0};
  std::vector<std::thread> raters;
  for (std::size_t r = 0; r < rater_tokens.size(); ++r)
    raters.emplace_back([&, r] {
      const std::string& token = rater_tokens[r];
      bool correct = true;
      int seen = 0;
      while (!done) {
        grpc::ClientContext context;
        authorize(context, token);
        v1::LeaseRequest lease;
        lease.set_campaign_id(campaign);
        lease.set_max_items(8);
        v1::LeaseResponse leased;
        if (!feedback->Lease(&context, lease, &leased).ok() || leased.items().empty()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          continue;
        }
        for (const v1::LeasedItem& item : leased.items()) {
          if (++seen % 10 == 0) {  // skips are part of a rater's day too
            grpc::ClientContext skip_context;
            authorize(skip_context, token);
            v1::SkipRequest skip;
            skip.set_lease_id(item.lease_id());
            skip.set_reason(v1::SKIP_REASON_UNSURE);
            v1::SkipResponse skipped;
            (void)feedback->Skip(&skip_context, skip, &skipped);
            continue;
          }
          grpc::ClientContext submit_context;
          authorize(submit_context, token);
          v1::SubmitRequest submit;
          submit.set_lease_id(item.lease_id());
          submit.mutable_answer()->set_label_correct(correct);
          submit.set_seconds_spent(2.5);
          if (r == 1) correct = !correct;
          v1::SubmitResponse submitted;
          if (feedback->Submit(&submit_context, submit, &submitted).ok()) ++rated;
        }
      }
    });

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
        done = true;
        for (std::thread& t : raters) t.join();
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
  done = true;
  for (std::thread& t : raters) t.join();
  if (feedback) {
    std::cout << raters.size() << " simulated rater(s) submitted " << rated << " ratings\n";
  }
  if (feedback && rated == 0) all_ok = false;
  return all_ok ? 0 : 1;
}
