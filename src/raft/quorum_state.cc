#include "raft/quorum_state.h"

#include <nlohmann/json.hpp>

#include "runtime/file.h"

namespace gregor::raft {

std::string quorum_state_path(const std::string& partition_dir) { return partition_dir + "/quorum-state"; }

std::string encode_quorum_state(const quorum_state& s) {
  nlohmann::ordered_json j;
  j["clusterId"] = "";
  j["leaderId"] = s.leader_id;
  j["leaderEpoch"] = s.leader_epoch;
  j["votedId"] = s.voted_id;
  j["appliedOffset"] = 0;
  auto voters = nlohmann::ordered_json::array();
  for (int32_t v : s.voters) voters.push_back({{"voterId", v}});
  j["currentVoters"] = voters;
  j["data_version"] = 0;
  return j.dump();
}

result<quorum_state> decode_quorum_state(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return error{"the quorum-state file is not JSON"};
  quorum_state s;
  auto int_field = [&](const char* name, int32_t& out) -> bool {
    auto it = j.find(name);
    if (it == j.end()) return true;  // Kafka's defaults apply
    if (!it->is_number_integer()) return false;
    out = it->get<int32_t>();
    return true;
  };
  if (!int_field("leaderId", s.leader_id) || !int_field("leaderEpoch", s.leader_epoch) ||
      !int_field("votedId", s.voted_id))
    return error{"the quorum-state file has a field of the wrong type"};
  if (s.leader_epoch < 0) s.leader_epoch = 0;
  if (auto it = j.find("currentVoters"); it != j.end() && it->is_array()) {
    for (auto& v : *it)
      if (v.is_object() && v.contains("voterId") && v["voterId"].is_number_integer())
        s.voters.push_back(v["voterId"].get<int32_t>());
  }
  return s;
}

result<std::optional<quorum_state>> read_quorum_state(const std::string& partition_dir) {
  auto path = quorum_state_path(partition_dir);
  if (!runtime::fs::exists(path)) return std::optional<quorum_state>();
  auto text = runtime::fs::read_file(path);
  if (!text) return text.err();
  auto s = decode_quorum_state(text.value());
  if (!s) return error{path + ": " + s.err().message};
  return std::optional<quorum_state>(s.value());
}

result<void> write_quorum_state(const std::string& partition_dir, const quorum_state& s) {
  return runtime::fs::write_file_atomic(quorum_state_path(partition_dir), encode_quorum_state(s));
}

}  // namespace gregor::raft
