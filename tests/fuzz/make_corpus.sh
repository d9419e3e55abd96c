#!/usr/bin/env bash
# Writes the fuzz targets' seed corpora under tests/fuzz/corpus/ (committed; run again after a
# contract change). Each seed is a valid input, so the fuzzers start from the code's happy paths:
# requests encoded from protobuf text with protoc, the shipped specs and configs, real /proc
# lines, a real IDX header, a PNG the trainer's encoder would write.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=tests/fuzz/corpus
rm -rf "$OUT" && mkdir -p "$OUT"/{feedback_rpc_fuzz,feedback_json_fuzz,run_config_fuzz,parsers_fuzz,yaml_fuzz}
encode() {  # encode TYPE TEXT > file
  printf '%s' "$2" | protoc --encode="greenloop.v1.$1" -I proto -I /usr/include \
    proto/greenloop/v1/feedback.proto proto/greenloop/v1/trainer.proto
}
# feedback_rpc_fuzz: [rpc][role][campaign kind] + request bytes (rpc numbers: the target's switch).
rpc() {  # rpc NAME RPC_NUMBER ROLE KIND TYPE TEXT
  { printf "\\x$(printf %02x "$2")\\x$(printf %02x "$3")\\x$(printf %02x "$4")"; encode "$5" "$6"; } \
    >"$OUT/feedback_rpc_fuzz/$1"
}
rpc create 0 2 1 CreateCampaignRequest 'campaign_id: "c1" spec { question_kind: QUESTION_KIND_LABEL_CHOICE ratings_per_item: 3 labels { name: "cat" } labels { name: "dog" } }'
rpc enqueue 4 1 1 EnqueueItemsRequest 'campaign_id: "c1" items { sample { dataset: DATASET_SPAM_ASSASSIN index: 7 } payload { text: "buy now" } given_label: 1 priority: 0.5 }'
rpc lease 5 0 1 LeaseRequest 'campaign_id: "c1" max_items: 3'
rpc submit 6 0 1 SubmitRequest 'lease_id: "42" answer { label: 1 } seconds_spent: 4.2'
rpc submit_mask 6 0 3 SubmitRequest 'lease_id: "42" answer { feature_mask { irrelevant_cells: 0 irrelevant_cells: 48 } } seconds_spent: 22'
rpc skip 7 0 1 SkipRequest 'lease_id: "42" reason: SKIP_REASON_UNREADABLE'
rpc token 11 2 1 CreateTokenRequest 'role: ROLE_RATER name: "alice"'
rpc stats 9 1 1 GetCampaignStatsRequest 'campaign_id: "c1"'
# feedback_json_fuzz: [rpc] + JSON body.
printf '\x00{"campaignId":"c1","maxItems":3}' >"$OUT/feedback_json_fuzz/lease"
printf '\x01{"leaseId":"42","answer":{"label":1},"secondsSpent":4.2}' >"$OUT/feedback_json_fuzz/submit"
printf '\x02{"leaseId":"42","reason":"SKIP_REASON_UNSURE"}' >"$OUT/feedback_json_fuzz/skip"
printf '\x04{"campaignId":"c1","pageSize":10}' >"$OUT/feedback_json_fuzz/ratings"
# run_config_fuzz: StartRunRequest bytes.
encode StartRunRequest 'run_id: "exp-1-s0-hitl" config { dataset: DATASET_FASHION_MNIST mode: MODE_HITL max_train_samples: 4000 budget { max_epochs: 5 } select_every_steps: 4 feedback { endpoint: "127.0.0.1:7102" campaign_id: "exp-1-s0-hitl" } energy_endpoint: "127.0.0.1:7101" checkpoint_dir: "team-a" }' \
  >"$OUT/run_config_fuzz/hitl"
encode StartRunRequest 'run_id: "r2" world_size: 2 rank: 1 rendezvous_host: "127.0.0.1" rendezvous_port: 29500 config { dataset: DATASET_SPAM_ASSASSIN mode: MODE_HITL_COMBINED select_every_steps: 2 budget { max_steps: 100 max_energy_joules: 50 } decoy { enabled: true } feature_feedback { method: FEATURE_METHOD_REMOVE penalty_samples: 16 } feedback { endpoint: "127.0.0.1:7102" campaign_id: "a" feature_campaign_id: "a-f" } energy_endpoint: "127.0.0.1:7101" }' \
  >"$OUT/run_config_fuzz/combined"
# parsers_fuzz: [parser] + input.
printf '\x00\x00\x00\x08\x03\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x02\x01\x02\x03\x04' >"$OUT/parsers_fuzz/idx"
{ printf '\x01'; printf '{"spam/0001":"spam","easy_ham/0002":"ham","x":{"nested":1},"u":"\\u00e9"}'; } >"$OUT/parsers_fuzz/json"
{ printf '\x02'; printf 'Subject: Buy now!!!\nFrom: a@b\n\nCheap $$$ offers, reply today.\n'; } >"$OUT/parsers_fuzz/mail"
{ printf '\x03'; cat /proc/self/stat; } >"$OUT/parsers_fuzz/proc_pid_stat"
{ printf '\x04'; head -3 /proc/stat; } >"$OUT/parsers_fuzz/proc_stat"
{ printf '\x05'; printf 'cpu 100 400\nmeter rapl:intel-rapl:0 123456\nidle rapl:intel-rapl:0 2.5\nproc 42 100 77\n'; } >"$OUT/parsers_fuzz/counters"
python3 - "$OUT/parsers_fuzz/png" <<'PY'
import struct, sys, zlib
w, h = 4, 2
raw = b''.join(b'\x00' + bytes(range(y * w, y * w + w)) for y in range(h))
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0)) \
    + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
open(sys.argv[1], 'wb').write(b'\x06' + png)
PY
printf '\x07\x03\x04\x02abcdefghijkl' >"$OUT/parsers_fuzz/encode"
# yaml_fuzz: [0: spec, 1: service config] + YAML.
for f in examples/*.yaml; do { printf '\x00'; cat "$f"; } >"$OUT/yaml_fuzz/spec-$(basename "$f")"; done
for f in deploy/local/*.yaml; do { printf '\x01'; cat "$f"; } >"$OUT/yaml_fuzz/config-$(basename "$f")"; done
# Inputs that once crashed a target, kept as seeds so every run tries them again.
printf '\x01\n?  level: \x06' >"$OUT/yaml_fuzz/regression-complex-key"  # config: complex key
echo "corpora written under $OUT"
