// Checks the rules every greenloop.v1 contract follows (stated at the top of
// proto/greenloop/v1/common.proto): RPC naming, enum zero values and prefixes, field numbers,
// comments, units in names, and the JSON mapping the feedback service's HTTP API relies on.
//
// The rules run on two views of the same files: the descriptors compiled into the generated code
// (what servers and clients actually use) and the descriptor set protoc wrote with comments (the
// only place comments survive). Each checker returns its violations as text, and is also run on a
// deliberately broken file to show that it does catch what it is meant to catch.

#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "greenloop/v1/common.pb.h"
#include "greenloop/v1/energy.grpc.pb.h"
#include "greenloop/v1/feedback.grpc.pb.h"
#include "greenloop/v1/trainer.grpc.pb.h"

namespace greenloop::v1 {
namespace {

namespace pb = google::protobuf;
using ::testing::IsEmpty;

constexpr std::string_view kPackage = "greenloop.v1";

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// "EnergyDomain" → "ENERGY_DOMAIN".
std::string UpperSnake(std::string_view camel) {
  std::string out;
  for (size_t i = 0; i < camel.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(camel[i]);
    if (std::isupper(c) && i > 0) out += '_';
    out += static_cast<char>(std::toupper(c));
  }
  return out;
}

std::vector<std::string> SplitWords(std::string_view snake) {
  std::vector<std::string> words;
  std::stringstream stream{std::string(snake)};
  for (std::string word; std::getline(stream, word, '_');) words.push_back(word);
  return words;
}

// Calls `visit` on every message of `file`, nested ones included.
template <typename Visit>
void ForEachMessage(const pb::FileDescriptor& file, Visit visit) {
  std::vector<const pb::Descriptor*> pending;
  for (int i = 0; i < file.message_type_count(); ++i) pending.push_back(file.message_type(i));
  while (!pending.empty()) {
    const pb::Descriptor* message = pending.back();
    pending.pop_back();
    visit(*message);
    for (int i = 0; i < message->nested_type_count(); ++i) {
      pending.push_back(message->nested_type(i));
    }
  }
}

// Calls `visit` on every enum of `file`, nested ones included.
template <typename Visit>
void ForEachEnum(const pb::FileDescriptor& file, Visit visit) {
  for (int i = 0; i < file.enum_type_count(); ++i) visit(*file.enum_type(i));
  ForEachMessage(file, [&](const pb::Descriptor& message) {
    for (int i = 0; i < message.enum_type_count(); ++i) visit(*message.enum_type(i));
  });
}

// --- checkers --------------------------------------------------------------------------------

// Every method takes <Method>Request and returns <Method>Response, both top-level messages of the
// service's own package, and every message named *Request or *Response is the input or output of
// exactly one method.
std::vector<std::string> CheckRpcNaming(const std::vector<const pb::FileDescriptor*>& files) {
  std::vector<std::string> violations;
  std::map<std::string, int> uses;  // full name of a message → methods using it
  for (const pb::FileDescriptor* file : files) {
    const std::string prefix = file->package() + ".";
    for (int s = 0; s < file->service_count(); ++s) {
      const pb::ServiceDescriptor& service = *file->service(s);
      for (int m = 0; m < service.method_count(); ++m) {
        const pb::MethodDescriptor& method = *service.method(m);
        const std::string want_input = prefix + method.name() + "Request";
        const std::string want_output = prefix + method.name() + "Response";
        if (method.input_type()->full_name() != want_input) {
          violations.push_back(method.full_name() + " takes " + method.input_type()->full_name() +
                               ", want " + want_input);
        }
        if (method.output_type()->full_name() != want_output) {
          violations.push_back(method.full_name() + " returns " +
                               method.output_type()->full_name() + ", want " + want_output);
        }
        if (method.client_streaming()) {
          violations.push_back(method.full_name() + " streams from the client; not in our rules");
        }
        ++uses[method.input_type()->full_name()];
        ++uses[method.output_type()->full_name()];
      }
    }
  }
  for (const pb::FileDescriptor* file : files) {
    ForEachMessage(*file, [&](const pb::Descriptor& message) {
      if (!EndsWith(message.name(), "Request") && !EndsWith(message.name(), "Response")) return;
      const int count = uses[message.full_name()];
      if (count != 1) {
        violations.push_back(message.full_name() + " is used by " + std::to_string(count) +
                             " methods, want exactly 1");
      }
    });
  }
  return violations;
}

// Every enum's zero value is <ENUM_NAME>_UNSPECIFIED and every value starts with <ENUM_NAME>_.
std::vector<std::string> CheckEnums(const std::vector<const pb::FileDescriptor*>& files) {
  std::vector<std::string> violations;
  for (const pb::FileDescriptor* file : files) {
    ForEachEnum(*file, [&](const pb::EnumDescriptor& enum_type) {
      const std::string prefix = UpperSnake(enum_type.name()) + "_";
      const pb::EnumValueDescriptor* zero = enum_type.FindValueByNumber(0);
      if (zero == nullptr || !EndsWith(zero->name(), "_UNSPECIFIED")) {
        violations.push_back(enum_type.full_name() + ": value 0 is " +
                             (zero == nullptr ? "missing" : zero->name()) +
                             ", want a name ending in _UNSPECIFIED");
      } else if (zero->name() != prefix + "UNSPECIFIED") {
        violations.push_back(enum_type.full_name() + ": value 0 is " + zero->name() + ", want " +
                             prefix + "UNSPECIFIED");
      }
      for (int i = 0; i < enum_type.value_count(); ++i) {
        const pb::EnumValueDescriptor& value = *enum_type.value(i);
        if (!StartsWith(value.name(), prefix)) {
          violations.push_back(enum_type.full_name() + "." + value.name() + " lacks prefix " +
                               prefix);
        }
      }
    });
  }
  return violations;
}

// Walks a message in proto form (so that a file protoc would reject can still be checked).
void CheckFieldNumbersIn(const pb::DescriptorProto& message, const std::string& scope,
                         std::vector<std::string>& violations) {
  const std::string name = scope + "." + message.name();
  std::set<int> numbers;
  for (const pb::FieldDescriptorProto& field : message.field()) {
    if (!numbers.insert(field.number()).second) {
      violations.push_back(name + ": field number " + std::to_string(field.number()) +
                           " used twice (again by " + field.name() + ")");
    }
    for (const pb::DescriptorProto::ReservedRange& range : message.reserved_range()) {
      if (field.number() >= range.start() && field.number() < range.end()) {
        violations.push_back(name + "." + field.name() + " reuses reserved number " +
                             std::to_string(field.number()));
      }
    }
    for (const std::string& reserved : message.reserved_name()) {
      if (field.name() == reserved) {
        violations.push_back(name + "." + field.name() + " reuses a reserved name");
      }
    }
  }
  for (const pb::DescriptorProto& nested : message.nested_type()) {
    CheckFieldNumbersIn(nested, name, violations);
  }
}

// No message uses a field number twice, or a number or name it reserved.
std::vector<std::string> CheckFieldNumbers(const std::vector<pb::FileDescriptorProto>& files) {
  std::vector<std::string> violations;
  for (const pb::FileDescriptorProto& file : files) {
    for (const pb::DescriptorProto& message : file.message_type()) {
      CheckFieldNumbersIn(message, file.package(), violations);
    }
  }
  return violations;
}

template <typename Descriptor>
bool HasComment(const Descriptor& descriptor) {
  pb::SourceLocation location;
  if (!descriptor.GetSourceLocation(&location)) return false;
  const auto blank = [](const std::string& text) {
    return std::all_of(text.begin(), text.end(),
                       [](unsigned char c) { return std::isspace(c) != 0; });
  };
  return !blank(location.leading_comments) || !blank(location.trailing_comments);
}

// Every service, method, message, field, oneof, enum and enum value has a comment. Needs
// descriptors built with source info.
std::vector<std::string> CheckComments(const std::vector<const pb::FileDescriptor*>& files) {
  std::vector<std::string> violations;
  const auto require = [&](const auto& descriptor) {
    if (!HasComment(descriptor)) violations.push_back(descriptor.full_name() + " has no comment");
  };
  for (const pb::FileDescriptor* file : files) {
    for (int s = 0; s < file->service_count(); ++s) {
      require(*file->service(s));
      for (int m = 0; m < file->service(s)->method_count(); ++m)
        require(*file->service(s)->method(m));
    }
    ForEachMessage(*file, [&](const pb::Descriptor& message) {
      require(message);
      for (int i = 0; i < message.field_count(); ++i) require(*message.field(i));
      for (int i = 0; i < message.real_oneof_decl_count(); ++i) require(*message.oneof_decl(i));
    });
    ForEachEnum(*file, [&](const pb::EnumDescriptor& enum_type) {
      require(enum_type);
      for (int i = 0; i < enum_type.value_count(); ++i) require(*enum_type.value(i));
    });
  }
  return violations;
}

// A number that has a unit carries it in its name (energy_joules, interval_ms, seconds_spent),
// and a point in time is a google.protobuf.Timestamp named *_time.
std::vector<std::string> CheckUnits(const std::vector<const pb::FileDescriptor*>& files) {
  static const std::set<std::string> kQuantities = {"energy", "power",   "duration", "interval",
                                                    "carbon", "ttl",     "timeout",  "elapsed",
                                                    "eta",    "latency", "spent",    "retry"};
  static const std::set<std::string> kUnits = {"joules", "watts", "seconds", "ms",   "grams",
                                               "kwh",    "hour",  "hours",   "unix", "minutes"};
  std::vector<std::string> violations;
  for (const pb::FileDescriptor* file : files) {
    ForEachMessage(*file, [&](const pb::Descriptor& message) {
      for (int i = 0; i < message.field_count(); ++i) {
        const pb::FieldDescriptor& field = *message.field(i);
        if (field.message_type() != nullptr &&
            field.message_type()->full_name() == "google.protobuf.Timestamp" &&
            !EndsWith(field.name(), "_time")) {
          violations.push_back(field.full_name() + " is a Timestamp; name it *_time");
        }
        const auto type = field.cpp_type();
        const bool numeric = type == pb::FieldDescriptor::CPPTYPE_DOUBLE ||
                             type == pb::FieldDescriptor::CPPTYPE_FLOAT ||
                             type == pb::FieldDescriptor::CPPTYPE_INT32 ||
                             type == pb::FieldDescriptor::CPPTYPE_INT64 ||
                             type == pb::FieldDescriptor::CPPTYPE_UINT32 ||
                             type == pb::FieldDescriptor::CPPTYPE_UINT64;
        if (!numeric) continue;
        const std::vector<std::string> words = SplitWords(field.name());
        const bool quantity = std::any_of(words.begin(), words.end(), [](const std::string& w) {
          return kQuantities.count(w) > 0;
        });
        const bool unit = std::any_of(words.begin(), words.end(),
                                      [](const std::string& w) { return kUnits.count(w) > 0; });
        if (quantity && !unit) {
          violations.push_back(field.full_name() + " is a quantity without a unit in its name");
        }
      }
    });
  }
  return violations;
}

// --- fixtures --------------------------------------------------------------------------------

pb::FileDescriptorSet ReadProtoset(const char* path) {
  pb::FileDescriptorSet set;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  EXPECT_TRUE(set.ParseFromIstream(&in)) << "cannot parse " << path;
  return set;
}

// The greenloop.v1 files, as protoc wrote them with comments.
class ContractsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    protoset_ = new pb::FileDescriptorSet(ReadProtoset(GREENLOOP_V1_PROTOSET));
    commented_pool_ = new pb::DescriptorPool();
    for (const pb::FileDescriptorProto& file : protoset_->file()) {
      ASSERT_NE(commented_pool_->BuildFile(file), nullptr) << file.name();
    }
  }

  static void TearDownTestSuite() {
    delete commented_pool_;
    delete protoset_;
  }

  // The greenloop.v1 files of the descriptor set, in proto form.
  static std::vector<pb::FileDescriptorProto> OurFileProtos() {
    std::vector<pb::FileDescriptorProto> files;
    for (const pb::FileDescriptorProto& file : protoset_->file()) {
      if (file.package() == kPackage) files.push_back(file);
    }
    return files;
  }

  // The greenloop.v1 files as compiled into the generated code.
  static std::vector<const pb::FileDescriptor*> GeneratedFiles() {
    // The proto targets are static libraries: the linker keeps a file's code, and with it the
    // file's descriptor, only when something refers to it. Refer to one message per file.
    static const pb::Descriptor* const kAnchors[] = {
        Page::descriptor(), RegisterRequest::descriptor(), LeaseRequest::descriptor(),
        StartRunRequest::descriptor()};
    EXPECT_EQ(std::size(kAnchors), OurFileProtos().size()) << "anchor every greenloop.v1 file";
    std::vector<const pb::FileDescriptor*> files;
    for (const pb::FileDescriptorProto& file : OurFileProtos()) {
      const pb::FileDescriptor* generated =
          pb::DescriptorPool::generated_pool()->FindFileByName(file.name());
      EXPECT_NE(generated, nullptr) << file.name() << " is not linked into the test";
      if (generated != nullptr) files.push_back(generated);
    }
    return files;
  }

  // The greenloop.v1 files with comments.
  static std::vector<const pb::FileDescriptor*> CommentedFiles() {
    std::vector<const pb::FileDescriptor*> files;
    for (const pb::FileDescriptorProto& file : OurFileProtos()) {
      files.push_back(commented_pool_->FindFileByName(file.name()));
    }
    return files;
  }

  static pb::FileDescriptorSet* protoset_;
  static pb::DescriptorPool* commented_pool_;
};

pb::FileDescriptorSet* ContractsTest::protoset_ = nullptr;
pb::DescriptorPool* ContractsTest::commented_pool_ = nullptr;

// A file that breaks every rule, built into its own pool (without comments).
class BrokenContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pb::TextFormat::ParseFromString(
        R"pb(
          name: "broken/v1/broken.proto"
          package: "broken.v1"
          syntax: "proto3"
          message_type { name: "GetThingRequest" }
          message_type { name: "ThingResponse" }
          message_type { name: "PutThingRequest" }
          message_type { name: "PutThingResponse" }
          message_type { name: "OrphanRequest" }
          message_type {
            name: "Thing"
            field { name: "duration" number: 1 type: TYPE_DOUBLE label: LABEL_OPTIONAL }
            field { name: "power_watts" number: 2 type: TYPE_DOUBLE label: LABEL_OPTIONAL }
            field {
              name: "created"
              number: 3
              type: TYPE_MESSAGE
              label: LABEL_OPTIONAL
              type_name: ".google.protobuf.Timestamp"
            }
          }
          enum_type {
            name: "Color"
            value { name: "RED" number: 0 }
            value { name: "COLOR_BLUE" number: 1 }
          }
          enum_type {
            name: "Shade"
            value { name: "COLOR_UNSPECIFIED" number: 0 }
          }
          service {
            name: "ThingService"
            method {
              name: "GetThing"
              input_type: ".broken.v1.GetThingRequest"
              output_type: ".broken.v1.ThingResponse"
            }
            method {
              name: "PutThing"
              input_type: ".broken.v1.PutThingRequest"
              output_type: ".broken.v1.PutThingResponse"
            }
            method {
              name: "PutOtherThing"
              input_type: ".broken.v1.PutThingRequest"
              output_type: ".broken.v1.PutThingResponse"
            }
          }
          dependency: "google/protobuf/timestamp.proto"
        )pb",
        &proto_));
    pb::FileDescriptorProto timestamp;
    google::protobuf::Timestamp::descriptor()->file()->CopyTo(&timestamp);
    ASSERT_NE(pool_.BuildFile(timestamp), nullptr);
    file_ = pool_.BuildFile(proto_);
    ASSERT_NE(file_, nullptr);
  }

  pb::FileDescriptorProto proto_;
  pb::DescriptorPool pool_;
  const pb::FileDescriptor* file_ = nullptr;
};

// Matches a violation list holding a line that contains every one of `parts`.
MATCHER_P(HasViolation, parts, "") {
  return std::any_of(arg.begin(), arg.end(), [&](const std::string& line) {
    return std::all_of(parts.begin(), parts.end(), [&](const std::string& part) {
      return line.find(part) != std::string::npos;
    });
  });
}

using Parts = std::vector<std::string>;

// --- the contracts ---------------------------------------------------------------------------

TEST_F(ContractsTest, ProtosetAndGeneratedCodeHoldTheSameFiles) {
  const std::vector<pb::FileDescriptorProto> ours = OurFileProtos();
  std::set<std::string> names;
  for (const pb::FileDescriptorProto& file : ours) names.insert(file.name());
  EXPECT_EQ(names,
            (std::set<std::string>{"greenloop/v1/common.proto", "greenloop/v1/energy.proto",
                                   "greenloop/v1/feedback.proto", "greenloop/v1/trainer.proto"}));
  for (const pb::FileDescriptorProto& file : ours) {
    const pb::FileDescriptor* generated =
        pb::DescriptorPool::generated_pool()->FindFileByName(file.name());
    ASSERT_NE(generated, nullptr) << file.name();
    pb::FileDescriptorProto compiled;
    generated->CopyTo(&compiled);
    pb::FileDescriptorProto written = file;
    written.clear_source_code_info();
    pb::util::MessageDifferencer differencer;
    std::string differences;
    differencer.ReportDifferencesToString(&differences);
    // protoc writes json_name into descriptor sets; FileDescriptor::CopyTo leaves it out.
    differencer.IgnoreField(pb::FieldDescriptorProto::descriptor()->FindFieldByName("json_name"));
    EXPECT_TRUE(differencer.Compare(compiled, written))
        << file.name() << " differs between the descriptor set and the generated code:\n"
        << differences;
  }
}

TEST_F(ContractsTest, ServicesAreTheThreeWeDocument) {
  std::map<std::string, int> methods;
  for (const pb::FileDescriptor* file : GeneratedFiles()) {
    for (int s = 0; s < file->service_count(); ++s) {
      methods[file->service(s)->full_name()] = file->service(s)->method_count();
    }
  }
  ASSERT_EQ(methods.size(), 3u);
  EXPECT_GT(methods["greenloop.v1.EnergyService"], 0);
  EXPECT_GT(methods["greenloop.v1.FeedbackService"], 0);
  EXPECT_GT(methods["greenloop.v1.TrainerService"], 0);
}

TEST_F(ContractsTest, EveryMethodHasItsOwnRequestAndResponse) {
  EXPECT_THAT(CheckRpcNaming(GeneratedFiles()), IsEmpty());
}

TEST_F(ContractsTest, EveryEnumStartsWithPrefixedUnspecified) {
  EXPECT_THAT(CheckEnums(GeneratedFiles()), IsEmpty());
}

TEST_F(ContractsTest, NoFieldNumberIsUsedTwice) {
  EXPECT_THAT(CheckFieldNumbers(OurFileProtos()), IsEmpty());
}

TEST_F(ContractsTest, EverythingIsCommented) {
  EXPECT_THAT(CheckComments(CommentedFiles()), IsEmpty());
}

TEST_F(ContractsTest, QuantitiesCarryTheirUnits) {
  EXPECT_THAT(CheckUnits(GeneratedFiles()), IsEmpty());
}

TEST_F(ContractsTest, StreamingRpcsAreTheOnesWeDocument) {
  std::set<std::string> streaming;
  for (const pb::FileDescriptor* file : GeneratedFiles()) {
    for (int s = 0; s < file->service_count(); ++s) {
      for (int m = 0; m < file->service(s)->method_count(); ++m) {
        const pb::MethodDescriptor& method = *file->service(s)->method(m);
        if (method.server_streaming()) streaming.insert(method.full_name());
      }
    }
  }
  EXPECT_EQ(streaming, (std::set<std::string>{"greenloop.v1.EnergyService.WatchNodeSamples",
                                              "greenloop.v1.FeedbackService.WatchVerdicts",
                                              "greenloop.v1.TrainerService.StreamProgress"}));
}

// The HTTP API serves Lease through protobuf's JSON mapping: bytes travel as base64, names as
// lowerCamelCase, enums as names, timestamps as RFC 3339, and an explicitly set zero survives.
TEST(LeaseJsonTest, RoundTripsAPngPayload) {
  // A PNG signature and the start of an IHDR chunk: not valid UTF-8, with NUL bytes.
  const std::string png = {'\x89', 'P',  'N',  'G',    '\r', '\n', '\x1a', '\n',
                           '\0',   '\0', '\0', '\x0d', 'I',  'H',  'D',    'R',
                           '\0',   '\0', '\0', '\x1c', '\0', '\0', '\0',   '\x1c'};
  LeaseResponse response;
  LeasedItem* item = response.add_items();
  item->set_lease_id("lease-1");
  item->set_item_id("item-7");
  item->set_campaign_id("run-42-labels");
  item->mutable_expire_time()->set_seconds(1700000000);
  item->mutable_payload()->set_png(png);
  Question* question = item->mutable_question();
  question->set_kind(QUESTION_KIND_LABEL_CHECK);
  question->set_prompt("Is this a T-shirt/top?");
  Label* label = question->add_labels();
  label->set_name("t_shirt_top");
  label->set_display_name("T-shirt/top");
  question->add_labels()->set_name("trouser");
  question->set_given_label(0);
  question->mutable_model_prediction()->set_label(1);
  question->mutable_model_prediction()->set_confidence(0.875);

  std::string json;
  ASSERT_TRUE(pb::util::MessageToJsonString(response, &json).ok());
  EXPECT_NE(json.find(R"("png":"iVBORw0KGgoAAAANSUhEUgAAABwAAAAc")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("leaseId":"lease-1")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("expireTime":"2023-11-14T22:13:20Z")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("kind":"QUESTION_KIND_LABEL_CHECK")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("givenLabel":0)"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("displayName":"T-shirt/top")"), std::string::npos) << json;

  LeaseResponse parsed;
  ASSERT_TRUE(pb::util::JsonStringToMessage(json, &parsed).ok());
  EXPECT_TRUE(pb::util::MessageDifferencer::Equals(response, parsed))
      << "sent:\n"
      << response.DebugString() << "got back:\n"
      << parsed.DebugString();
  ASSERT_EQ(parsed.items_size(), 1);
  EXPECT_EQ(parsed.items(0).payload().png(), png);
  EXPECT_TRUE(parsed.items(0).question().has_given_label());
}

// --- the checkers catch what they are meant to catch ------------------------------------------

TEST_F(BrokenContractTest, RpcNamingCatchesMisnamedSharedAndOrphanMessages) {
  const std::vector<std::string> violations = CheckRpcNaming({file_});
  EXPECT_THAT(violations, HasViolation(Parts{"GetThing returns broken.v1.ThingResponse",
                                             "want broken.v1.GetThingResponse"}));
  EXPECT_THAT(violations, HasViolation(Parts{"PutOtherThing takes broken.v1.PutThingRequest"}));
  EXPECT_THAT(violations, HasViolation(Parts{"broken.v1.PutThingRequest is used by 2 methods"}));
  EXPECT_THAT(violations, HasViolation(Parts{"broken.v1.OrphanRequest is used by 0 methods"}));
}

TEST_F(BrokenContractTest, EnumCheckCatchesZeroValuesAndPrefixes) {
  const std::vector<std::string> violations = CheckEnums({file_});
  EXPECT_THAT(violations, HasViolation(Parts{"broken.v1.Color: value 0 is RED"}));
  EXPECT_THAT(violations, HasViolation(Parts{"broken.v1.Color.RED lacks prefix COLOR_"}));
  EXPECT_THAT(violations, HasViolation(Parts{"broken.v1.Shade: value 0 is COLOR_UNSPECIFIED",
                                             "want SHADE_UNSPECIFIED"}));
}

TEST_F(BrokenContractTest, FieldNumberCheckCatchesReuse) {
  pb::FileDescriptorProto reused = proto_;
  pb::DescriptorProto* thing = reused.mutable_message_type(5);
  ASSERT_EQ(thing->name(), "Thing");
  thing->mutable_field(1)->set_number(1);
  pb::DescriptorProto::ReservedRange* range = thing->add_reserved_range();
  range->set_start(3);
  range->set_end(4);
  thing->add_reserved_name("duration");
  const std::vector<std::string> violations = CheckFieldNumbers({reused});
  EXPECT_THAT(violations, HasViolation(Parts{"broken.v1.Thing: field number 1 used twice"}));
  EXPECT_THAT(violations, HasViolation(Parts{"broken.v1.Thing.created reuses reserved number 3"}));
  EXPECT_THAT(violations, HasViolation(Parts{"broken.v1.Thing.duration reuses a reserved name"}));
}

TEST_F(BrokenContractTest, CommentCheckCatchesMissingComments) {
  const std::vector<std::string> violations = CheckComments({file_});
  EXPECT_THAT(violations, HasViolation(Parts{"broken.v1.ThingService has no comment"}));
  EXPECT_THAT(violations, HasViolation(Parts{"broken.v1.ThingService.GetThing has no comment"}));
  EXPECT_THAT(violations, HasViolation(Parts{"broken.v1.Thing.duration has no comment"}));
  EXPECT_THAT(violations, HasViolation(Parts{"broken.v1.COLOR_BLUE has no comment"}));
}

TEST_F(BrokenContractTest, UnitCheckCatchesBareQuantitiesAndTimestamps) {
  const std::vector<std::string> violations = CheckUnits({file_});
  EXPECT_THAT(violations, HasViolation(Parts{"broken.v1.Thing.duration is a quantity"}));
  EXPECT_THAT(violations, HasViolation(Parts{"broken.v1.Thing.created is a Timestamp"}));
  EXPECT_THAT(violations, ::testing::Not(HasViolation(Parts{"power_watts"})));
}

}  // namespace
}  // namespace greenloop::v1
