// A stand-in for libnvidia-ml.so.1 with the entry points greenloop-energy resolves, so tests
// exercise the real dlopen/dlsym path without a GPU. Two fake GPUs: index 0 has an energy counter
// (Volta and newer), index 1 only reports power (older GPUs). Tests drive the values through
// fake_nvml_set().
#include <cstdio>

extern "C" {

struct nvmlDevice_st {
  int index;
};

static struct nvmlDevice_st devices[2] = {{0}, {1}};
static unsigned long long energy_mj[2] = {0, 0};
static unsigned power_mw[2] = {0, 0};

void fake_nvml_set(int index, unsigned long long mj, unsigned mw) {
  energy_mj[index] = mj;
  power_mw[index] = mw;
}

int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
const char* nvmlErrorString(int r) { return r == 3 ? "Not Supported" : "Unknown Error"; }
int nvmlDeviceGetCount_v2(unsigned* count) {
  *count = 2;
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned index, struct nvmlDevice_st** device) {
  if (index > 1) return 2;  // NVML_ERROR_INVALID_ARGUMENT
  *device = &devices[index];
  return 0;
}
int nvmlDeviceGetUUID(struct nvmlDevice_st* device, char* uuid, unsigned length) {
  std::snprintf(uuid, length, "GPU-fake-%d", device->index);
  return 0;
}
int nvmlDeviceGetName(struct nvmlDevice_st* device, char* name, unsigned length) {
  std::snprintf(name, length, "%s", device->index == 0 ? "Fake H100" : "Fake P100");
  return 0;
}
int nvmlDeviceGetTotalEnergyConsumption(struct nvmlDevice_st* device, unsigned long long* mj) {
  if (device->index == 1) return 3;  // NVML_ERROR_NOT_SUPPORTED
  *mj = energy_mj[device->index];
  return 0;
}
int nvmlDeviceGetPowerUsage(struct nvmlDevice_st* device, unsigned* mw) {
  *mw = power_mw[device->index];
  return 0;
}

}  // extern "C"
