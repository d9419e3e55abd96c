// k8s_check: checks the Kubernetes manifests of deploy/k8s without a cluster (CTest
// deploy.k8s_manifests).
//
//   k8s_check DIR [--binary PATH ...]
//
// - kustomization.yaml lists every manifest in DIR and only those; every document parses;
// - every (apiVersion, kind) is a real built-in Kubernetes API, and every object has a name and
//   sits in a namespace that the set creates;
// - every ConfigMap, Secret (and key) and Service that a workload refers to is in the set: volumes,
//   env valueFrom, envFrom, a StatefulSet's serviceName (headless), a Service's selector (matches
//   a workload's pods) and its named targetPorts (a container port of those pods);
// - every container has readiness and liveness probes on the gRPC health service of one of its
//   ports, and mounts every hostPath read-only;
// - no GREENLOOP_* variable takes a Secret's value (secretKeyRef): Secrets are mounted as files
//   and named by GREENLOOP_<KEY>_FILE, so they stay out of the environment;
// - with --binary greenloop-X: every GREENLOOP_* variable (less a _FILE suffix) a greenloop-X
//   container sets and every key of a ConfigMap entry X.yaml is a config key that
//   `greenloop-X --help` lists.
//
// Prints one line per problem and exits 1 if there is any.
#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

int problems = 0;
void Problem(const std::string& where, const std::string& what) {
  std::cout << "FAIL: " << where << ": " << what << "\n";
  ++problems;
}

// The built-in APIs a manifest of ours may use (Kubernetes 1.27+), and whether they are namespaced.
const std::map<std::pair<std::string, std::string>, bool>& KnownKinds() {
  static const std::map<std::pair<std::string, std::string>, bool> kinds = {
      {{"v1", "Namespace"}, false},
      {{"v1", "ConfigMap"}, true},
      {{"v1", "Secret"}, true},
      {{"v1", "Service"}, true},
      {{"v1", "ServiceAccount"}, true},
      {{"v1", "PersistentVolumeClaim"}, true},
      {{"apps/v1", "Deployment"}, true},
      {{"apps/v1", "StatefulSet"}, true},
      {{"apps/v1", "DaemonSet"}, true},
      {{"batch/v1", "Job"}, true},
      {{"batch/v1", "CronJob"}, true},
      {{"policy/v1", "PodDisruptionBudget"}, true},
      {{"networking.k8s.io/v1", "NetworkPolicy"}, true},
      {{"networking.k8s.io/v1", "Ingress"}, true},
      {{"rbac.authorization.k8s.io/v1", "Role"}, true},
      {{"rbac.authorization.k8s.io/v1", "RoleBinding"}, true},
      {{"rbac.authorization.k8s.io/v1", "ClusterRole"}, false},
      {{"rbac.authorization.k8s.io/v1", "ClusterRoleBinding"}, false},
  };
  return kinds;
}

struct Object {
  std::string file, api_version, kind, name, ns;
  YAML::Node node;
  std::string Where() const { return file + ": " + kind + "/" + name; }
};

// The node at a path of map keys, or an undefined node where a key is missing (yaml-cpp throws when
// one indexes past a missing key).
YAML::Node At(const YAML::Node& n, std::initializer_list<const char*> path) {
  YAML::Node cur;
  cur.reset(n);
  for (const char* key : path) {
    if (!cur || !cur.IsMap() || !cur[key]) return YAML::Node(YAML::NodeType::Undefined);
    cur.reset(cur[key]);  // rebind: operator= would assign into the tree
  }
  return cur;
}

std::string Str(const YAML::Node& n) { return n && n.IsScalar() ? n.as<std::string>() : ""; }

// Keys and [env VARIABLE]s that `binary --help` lists.
struct HelpKeys {
  std::set<std::string> keys, env;
};
HelpKeys ReadHelp(const std::string& binary) {
  HelpKeys h;
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((binary + " --help 2>&1").c_str(), "r"), pclose);
  if (!pipe) return h;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), pipe.get()) != nullptr) out += buf.data();
  static const std::regex key_re(R"(^\s+--([a-z0-9_.]+) \()"),
      env_re(R"(\[env (GREENLOOP_[A-Z0-9_]+)\])");
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, key_re)) h.keys.insert(m[1]);
    if (std::regex_search(line, m, env_re)) h.env.insert(m[1]);
  }
  return h;
}

void FlattenKeys(const YAML::Node& n, const std::string& prefix, std::vector<std::string>& out) {
  if (n.IsMap()) {
    for (const auto& kv : n) {
      FlattenKeys(
          kv.second,
          prefix.empty() ? kv.first.as<std::string>() : prefix + "." + kv.first.as<std::string>(),
          out);
    }
  } else {
    out.push_back(prefix);
  }
}

bool LabelsMatch(const YAML::Node& selector, const YAML::Node& labels) {
  if (!selector || !selector.IsMap() || selector.size() == 0) return false;
  for (const auto& kv : selector) {
    if (!labels || !labels[kv.first.as<std::string>()] ||
        Str(labels[kv.first.as<std::string>()]) != Str(kv.second)) {
      return false;
    }
  }
  return true;
}

int Check(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: k8s_check DIR [--binary PATH ...]\n";
    return 2;
  }
  const fs::path dir = argv[1];
  std::map<std::string, HelpKeys> binaries;  // "greenloop-energy" -> its keys
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) != "--binary") continue;
    if (!fs::exists(argv[i + 1])) {
      std::cout << "PENDING: " << argv[i + 1] << " is not built; its keys are not checked\n";
      continue;
    }
    binaries[fs::path(argv[i + 1]).filename().string()] = ReadHelp(argv[i + 1]);
  }

  // kustomization.yaml lists exactly the manifests of DIR.
  std::set<std::string> listed, present;
  try {
    const YAML::Node k = YAML::LoadFile((dir / "kustomization.yaml").string());
    for (const auto& r : k["resources"]) listed.insert(r.as<std::string>());
  } catch (const std::exception& e) {
    Problem("kustomization.yaml", e.what());
  }
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() == ".yaml" && name != "kustomization.yaml") present.insert(name);
  }
  for (const auto& f : present) {
    if (!listed.contains(f)) Problem("kustomization.yaml", "does not list " + f);
  }
  for (const auto& f : listed) {
    if (!present.contains(f))
      Problem("kustomization.yaml", "lists " + f + ", which does not exist");
  }

  std::vector<Object> objects;
  for (const auto& f : present) {
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAllFromFile((dir / f).string());
    } catch (const std::exception& e) {
      Problem(f, std::string("does not parse: ") + e.what());
      continue;
    }
    for (const auto& d : docs) {
      if (!d || d.IsNull()) continue;
      Object o{f,
               Str(d["apiVersion"]),
               Str(d["kind"]),
               Str(At(d, {"metadata", "name"})),
               Str(At(d, {"metadata", "namespace"})),
               d};
      auto known = KnownKinds().find({o.api_version, o.kind});
      if (known == KnownKinds().end()) {
        Problem(o.Where(), "unknown apiVersion/kind " + o.api_version + " " + o.kind);
      } else if (known->second && o.ns.empty()) {
        Problem(o.Where(), "has no metadata.namespace");
      }
      if (o.name.empty()) Problem(f, "a " + o.kind + " without metadata.name");
      objects.push_back(o);
    }
  }
  auto find = [&](const std::string& kind, const std::string& name,
                  const std::string& ns) -> const Object* {
    for (const auto& o : objects) {
      if (o.kind == kind && o.name == name && o.ns == ns) return &o;
    }
    return nullptr;
  };
  for (const auto& o : objects) {
    if (!o.ns.empty() && find("Namespace", o.ns, "") == nullptr) {
      Problem(o.Where(), "namespace " + o.ns + " is not created by this set");
    }
  }
  auto has_key = [](const Object* o, const std::string& key) {
    return (o->node["data"] && o->node["data"][key]) ||
           (o->node["stringData"] && o->node["stringData"][key]);
  };

  // Workloads and what they refer to.
  std::vector<const Object*> workloads;
  for (const auto& o : objects) {
    if (o.kind != "Deployment" && o.kind != "StatefulSet" && o.kind != "DaemonSet") continue;
    workloads.push_back(&o);
    const YAML::Node spec = o.node["spec"];
    const YAML::Node pod = At(spec, {"template", "spec"});
    if (!LabelsMatch(At(spec, {"selector", "matchLabels"}),
                     At(spec, {"template", "metadata", "labels"}))) {
      Problem(o.Where(), "spec.selector does not match the pod template's labels");
    }
    if (o.kind == "StatefulSet") {
      const Object* svc = find("Service", Str(spec["serviceName"]), o.ns);
      if (svc == nullptr) {
        Problem(o.Where(), "serviceName " + Str(spec["serviceName"]) + ": no such Service");
      } else if (Str(At(svc->node, {"spec", "clusterIP"})) != "None") {
        Problem(o.Where(), "serviceName " + svc->name + " is not headless (clusterIP: None)");
      }
    }
    std::set<std::string> volumes, host_paths;
    for (const auto& v : pod["volumes"]) {
      volumes.insert(Str(v["name"]));
      if (v["configMap"] && !find("ConfigMap", Str(v["configMap"]["name"]), o.ns)) {
        Problem(o.Where(),
                "volume " + Str(v["name"]) + ": no ConfigMap " + Str(v["configMap"]["name"]));
      }
      if (v["secret"] && !find("Secret", Str(v["secret"]["secretName"]), o.ns)) {
        Problem(o.Where(),
                "volume " + Str(v["name"]) + ": no Secret " + Str(v["secret"]["secretName"]));
      }
      if (v["hostPath"]) host_paths.insert(Str(v["name"]));
    }
    for (const auto& t : spec["volumeClaimTemplates"])
      volumes.insert(Str(At(t, {"metadata", "name"})));
    for (const auto& c : pod["containers"]) {
      const std::string where = o.Where() + " container " + Str(c["name"]);
      std::string image = Str(c["image"]);
      image = image.substr(0, image.find(':'));
      image = image.substr(image.rfind('/') == std::string::npos ? 0 : image.rfind('/') + 1);
      const auto help = binaries.find(image);
      std::set<int> ports;
      for (const auto& p : c["ports"]) ports.insert(p["containerPort"].as<int>());
      for (const char* probe : {"readinessProbe", "livenessProbe"}) {
        const YAML::Node pr = c[probe];
        if (!pr || !pr["grpc"]) {
          Problem(where, std::string("no ") + probe + " on the gRPC health service");
        } else if (!ports.contains(pr["grpc"]["port"].as<int>())) {
          Problem(where, std::string(probe) + " probes a port the container does not expose");
        }
      }
      for (const auto& e : c["env"]) {
        const std::string name = Str(e["name"]);
        if (const YAML::Node ref = At(e, {"valueFrom", "secretKeyRef"})) {
          if (name.starts_with("GREENLOOP_")) {
            Problem(where, "env " + name + " takes a Secret's value: mount the Secret and set " +
                               name + "_FILE instead");
          }
          const Object* s = find("Secret", Str(ref["name"]), o.ns);
          if (s == nullptr || !has_key(s, Str(ref["key"]))) {
            Problem(where, "env " + name + ": no Secret " + Str(ref["name"]) + " with key " +
                               Str(ref["key"]));
          }
        }
        if (const YAML::Node ref = At(e, {"valueFrom", "configMapKeyRef"})) {
          const Object* m = find("ConfigMap", Str(ref["name"]), o.ns);
          if (m == nullptr || !has_key(m, Str(ref["key"]))) {
            Problem(where, "env " + name + ": no ConfigMap " + Str(ref["name"]) + " with key " +
                               Str(ref["key"]));
          }
        }
        const std::string variable =
            name.ends_with("_FILE") ? name.substr(0, name.size() - 5) : name;  // a value's file
        if (name.starts_with("GREENLOOP_") && help != binaries.end() &&
            !help->second.env.contains(variable)) {
          Problem(where, "env " + name + " is not a config variable of " + image);
        }
      }
      for (const auto& e : c["envFrom"]) {
        if (e["configMapRef"] && !find("ConfigMap", Str(e["configMapRef"]["name"]), o.ns)) {
          Problem(where, "envFrom: no ConfigMap " + Str(e["configMapRef"]["name"]));
        }
        if (e["secretRef"] && !find("Secret", Str(e["secretRef"]["name"]), o.ns)) {
          Problem(where, "envFrom: no Secret " + Str(e["secretRef"]["name"]));
        }
      }
      for (const auto& m : c["volumeMounts"]) {
        const std::string v = Str(m["name"]);
        if (!volumes.contains(v))
          Problem(where, "mounts volume " + v + ", which the pod does not define");
        if (host_paths.contains(v) && !(m["readOnly"] && m["readOnly"].as<bool>())) {
          Problem(where, "mounts host path volume " + v + " writable");
        }
      }
    }
  }

  // Every Service selects the pods of a workload, and its named targetPorts exist there.
  for (const auto& o : objects) {
    if (o.kind != "Service") continue;
    const Object* target = nullptr;
    for (const Object* w : workloads) {
      if (w->ns == o.ns && LabelsMatch(At(o.node, {"spec", "selector"}),
                                       At(w->node, {"spec", "template", "metadata", "labels"}))) {
        target = w;
      }
    }
    if (target == nullptr) {
      Problem(o.Where(), "its selector matches no workload's pods");
      continue;
    }
    std::set<std::string> port_names;
    for (const auto& c : At(target->node, {"spec", "template", "spec", "containers"})) {
      for (const auto& p : c["ports"]) port_names.insert(Str(p["name"]));
    }
    for (const auto& p : At(o.node, {"spec", "ports"})) {
      const std::string tp = Str(p["targetPort"]);
      if (!tp.empty() && !std::isdigit(static_cast<unsigned char>(tp[0])) &&
          !port_names.contains(tp)) {
        Problem(o.Where(), "targetPort " + tp + " is no container port of " + target->Where());
      }
    }
  }

  // ConfigMap entries X.yaml hold only keys that greenloop-X knows.
  for (const auto& o : objects) {
    if (o.kind != "ConfigMap" || !o.node["data"]) continue;
    for (const auto& kv : o.node["data"]) {
      const std::string entry = kv.first.as<std::string>();
      if (!entry.ends_with(".yaml")) continue;
      const auto help = binaries.find("greenloop-" + entry.substr(0, entry.size() - 5));
      YAML::Node config;
      try {
        config = YAML::Load(kv.second.as<std::string>());
      } catch (const std::exception& e) {
        Problem(o.Where(), entry + " does not parse: " + e.what());
        continue;
      }
      if (help == binaries.end()) continue;
      std::vector<std::string> keys;
      FlattenKeys(config, "", keys);
      for (const auto& key : keys) {
        if (!help->second.keys.contains(key)) {
          Problem(o.Where(), entry + ": '" + key + "' is not a key of " + help->first);
        }
      }
    }
  }

  std::cout << objects.size() << " objects in " << present.size() << " manifests, " << problems
            << " problem(s)\n";
  return problems == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Check(argc, argv);
  } catch (const std::exception& e) {  // a field of the wrong type or shape
    std::cout << "FAIL: a manifest has a field of the wrong shape: " << e.what() << "\n";
    return 1;
  }
}
