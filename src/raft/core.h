#pragma once
// The Raft core of the metadata quorum: Kafka's KRaft protocol (KIP-595, with
// pre-vote from KIP-996, check-quorum, and snapshots fetched with
// FetchSnapshot from KIP-630) as a pure state machine, like etcd's raft.
//
// Inputs are function calls — a request or response from another node, a
// tick with the current time, a proposal — and nothing else: no clock, no
// I/O, no threads; randomness comes through an injected function. After any
// input, take_ready() says what to do, in the order it must be done:
//
//   1. persist the election state (the quorum-state file), if it changed;
//   2. apply the log operations, in order, and flush the log;
//   3. send the requests and responses.
//
// so that nothing another node sees ever depends on something not yet on
// disk (the driver, driver.h, does exactly that). The core knows the log's
// shape (offsets and the epoch of every range, the latest snapshot), never
// its bytes: a leader's fetch response says which range to read, and a
// follower is given the batches' offsets and epochs along with their bytes.
//
// Roles, as in Kafka: unattached (no leader known), voted, prospective
// (asking for pre-votes), candidate, leader, follower, resigned (a leader
// that steps down; it leads nothing while it waits for the next epoch). A
// node not among the voters is an observer: it fetches, never votes or stands.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "base/bytes.h"
#include "protocol/errors.h"

namespace gregor::raft {

using protocol::error_code;

struct offset_and_epoch {
  int64_t offset = 0;
  int32_t epoch = 0;
  bool operator==(const offset_and_epoch&) const = default;
  auto operator<=>(const offset_and_epoch&) const = default;
};

// ---- messages (the fields of Kafka's KRaft RPCs that the protocol needs)

struct vote_request {
  int32_t candidate_epoch = 0;  // for a pre-vote: the epoch the candidate would stand in
  int32_t candidate_id = -1;
  offset_and_epoch last_log;  // the candidate's log end offset and last epoch (as Kafka sends them)
  bool pre_vote = false;
};
struct vote_response {
  error_code error = error_code::none;
  int32_t leader_id = -1;
  int32_t leader_epoch = 0;
  bool vote_granted = false;
};

struct begin_epoch_request {
  int32_t leader_id = -1;
  int32_t leader_epoch = 0;
};
struct begin_epoch_response {
  error_code error = error_code::none;
  int32_t leader_id = -1;
  int32_t leader_epoch = 0;
};

struct end_epoch_request {
  int32_t leader_id = -1;
  int32_t leader_epoch = 0;
  std::vector<int32_t> preferred_successors;
};
struct end_epoch_response {
  error_code error = error_code::none;
  int32_t leader_id = -1;
  int32_t leader_epoch = 0;
};

struct fetch_request {
  int32_t replica_id = -1;
  int32_t current_leader_epoch = 0;
  int64_t fetch_offset = 0;
  int32_t last_fetched_epoch = 0;
  int32_t max_wait_ms = 0;
};

// The offsets and epoch of one batch of a fetch response.
struct batch_info {
  int64_t base_offset = 0;
  int64_t last_offset = 0;
  int32_t epoch = 0;
};

struct fetch_response {
  error_code error = error_code::none;
  int32_t leader_id = -1;
  int32_t leader_epoch = 0;
  int64_t high_watermark = -1;
  int64_t log_start_offset = 0;
  std::optional<offset_and_epoch> diverging_epoch;  // {end_offset, epoch}
  std::optional<offset_and_epoch> snapshot_id;      // {end_offset, epoch}
  // Leader side: the driver fills the response with whole batches of the log
  // from read_from (at most read_max_bytes, at least one batch) when >= 0.
  int64_t read_from = -1;
  int32_t read_max_bytes = 0;
  // Follower side: what the driver found in the response's records.
  std::vector<batch_info> batches;
  std::shared_ptr<const bytes> records;
};

struct fetch_snapshot_request {
  int32_t replica_id = -1;
  int32_t current_leader_epoch = 0;
  offset_and_epoch snapshot_id;
  int64_t position = 0;
  int32_t max_bytes = 0;
};
struct fetch_snapshot_response {
  error_code error = error_code::none;
  int32_t leader_id = -1;
  int32_t leader_epoch = 0;
  offset_and_epoch snapshot_id;
  int64_t position = 0;
  // Leader side: the driver reads up to read_max_bytes of the snapshot from
  // position and sets snapshot_size.
  int32_t read_max_bytes = 0;
  // Follower side: the chunk and the snapshot's whole size.
  int64_t snapshot_size = 0;
  std::shared_ptr<const bytes> chunk;
};

using request = std::variant<vote_request, begin_epoch_request, end_epoch_request, fetch_request, fetch_snapshot_request>;
using response =
    std::variant<vote_response, begin_epoch_response, end_epoch_response, fetch_response, fetch_snapshot_response>;

// ---- persistent state and effects

struct election_state {
  int32_t epoch = 0;
  int32_t voted_id = -1;
  int32_t leader_id = -1;
  bool operator==(const election_state&) const = default;
};

struct epoch_entry {
  int32_t epoch = 0;
  int64_t start_offset = 0;
  bool operator==(const epoch_entry&) const = default;
};

// What the core knows of the log at start (the driver reads it from disk).
struct log_shape {
  int64_t log_start_offset = 0;
  int64_t log_end_offset = 0;
  std::vector<epoch_entry> epochs;  // oldest first
  std::optional<offset_and_epoch> latest_snapshot;  // {end_offset, epoch}
};

// A change to make to the log, in order.
struct log_op {
  enum class kind {
    append_records,        // leader: one batch of `records` at base_offset, in `epoch`
    append_leader_change,  // leader: the LeaderChangeMessage control record opening `epoch`
    append_batches,        // follower: `data` as received (offsets already set)
    truncate_to,           // remove everything from `offset` on
    write_snapshot_chunk,  // follower: `data` at `offset` (a position) of snapshot `snapshot`
    install_snapshot,      // follower: `snapshot` is complete; the log restarts at its end offset
    delete_before,         // everything below snapshot.offset is in snapshot `snapshot`
  };
  kind what;
  int32_t epoch = 0;
  int64_t offset = 0;
  std::vector<bytes> records;
  std::shared_ptr<const bytes> data;
  offset_and_epoch snapshot;
  int32_t leader_id = -1;
  std::vector<int32_t> voters;
};

struct outbound_request {
  uint64_t id = 0;  // pass back with the response or the failure
  int32_t to = -1;
  request msg;
};
struct outbound_response {
  uint64_t token = 0;  // the token the request came with
  response msg;
};

struct ready {
  std::optional<election_state> persist;
  std::vector<log_op> log;
  std::vector<outbound_request> requests;
  std::vector<outbound_response> responses;
  bool high_watermark_changed = false;
  bool leader_changed = false;  // leader or epoch
  bool empty() const {
    return !persist && log.empty() && requests.empty() && responses.empty() && !high_watermark_changed &&
           !leader_changed;
  }
};

struct core_config {
  int32_t node_id = -1;
  std::vector<int32_t> voters;
  int64_t election_timeout_ms = 1000;      // controller.quorum.election.timeout.ms
  int64_t election_backoff_max_ms = 1000;  // controller.quorum.election.backoff.max.ms
  int64_t fetch_timeout_ms = 2000;         // controller.quorum.fetch.timeout.ms
  int64_t retry_backoff_ms = 20;           // controller.quorum.retry.backoff.ms
  int32_t fetch_max_wait_ms = 500;         // how long a leader parks a fetch with nothing new
  int32_t fetch_max_bytes = 8 << 20;
  int32_t snapshot_chunk_bytes = 1 << 20;
};

enum class role { unattached, voted, prospective, candidate, leader, follower, resigned };
const char* role_name(role r);

// DescribeQuorum, from the leader's view.
struct replica_progress {
  int32_t id = -1;
  int64_t log_end_offset = -1;
  int64_t last_fetch_ms = -1;
  int64_t last_caught_up_ms = -1;
};
struct quorum_description {
  int32_t leader_id = -1;
  int32_t leader_epoch = 0;
  int64_t high_watermark = -1;
  std::vector<replica_progress> voters;
  std::vector<replica_progress> observers;
};

class core {
 public:
  core(core_config config, election_state persisted, log_shape log, int64_t now_ms,
       std::function<uint64_t()> random);

  // ---- inputs
  void tick(int64_t now_ms);
  void handle_request(int32_t from, uint64_t token, const request& r, int64_t now_ms);
  void handle_response(int32_t from, uint64_t request_id, const response& r, int64_t now_ms);
  void handle_request_failure(int32_t to, uint64_t request_id, int64_t now_ms);
  // Leader only: appends the records as one batch; returns the offset of
  // the last one, or nullopt if this node cannot take writes now.
  std::optional<int64_t> propose(std::vector<bytes> records, int64_t now_ms);
  // Steps down for a clean shutdown (a leader tells the voters to elect a
  // successor now). Harmless in any other role.
  void resign(int64_t now_ms);
  // The state machine wrote a snapshot of everything below id.offset
  // (<= the high watermark): the log before it may go.
  void snapshot_written(offset_and_epoch id);

  // ---- output
  ready take_ready();
  // When tick() must next be called, at the latest.
  int64_t next_deadline_ms() const;

  // ---- state
  role current_role() const { return role_; }
  int32_t node_id() const { return config_.node_id; }
  int32_t epoch() const { return epoch_; }
  int32_t leader_id() const { return leader_id_; }
  int32_t voted_id() const { return voted_id_; }
  bool is_voter() const { return is_voter(config_.node_id); }
  bool is_leader() const { return role_ == role::leader; }
  // Offsets below it are committed; -1 while unknown (a follower before its first fetch).
  int64_t high_watermark() const { return high_watermark_; }
  int64_t log_start_offset() const { return log_start_; }
  int64_t log_end_offset() const { return log_end_; }
  // The offset where the leader's current epoch starts (its LeaderChange record).
  int64_t epoch_start_offset() const { return epoch_start_offset_; }
  const std::vector<epoch_entry>& epochs() const { return epochs_; }
  std::optional<offset_and_epoch> latest_snapshot() const { return snapshot_; }
  // The epoch of the record at `offset` (< log end); 0 for an empty log.
  int32_t epoch_at(int64_t offset) const;
  // {log end offset, epoch of the last record}, as votes compare logs.
  offset_and_epoch last_log() const;
  quorum_description describe(int64_t now_ms) const;
  const core_config& config() const { return config_; }

 private:
  struct voter_progress {
    int64_t log_end_offset = -1;  // as the replica's fetch offset says
    int64_t last_fetch_ms = -1;
    int64_t last_caught_up_ms = -1;
    int64_t last_sent_high_watermark = -1;
  };
  struct parked_fetch {
    int32_t from;
    uint64_t token;
    fetch_request req;
    int64_t deadline_ms;
  };
  struct in_flight {
    int32_t to;
    int32_t epoch;  // when sent
    enum class kind { vote, pre_vote, begin_epoch, end_epoch, fetch, fetch_snapshot } what;
  };
  struct snapshot_download {
    offset_and_epoch id;
    int64_t position = 0;
  };

  // Transitions (each persists what must be persisted).
  void become_unattached(int32_t epoch, int64_t now_ms);
  void become_voted(int32_t candidate, int64_t now_ms);
  void become_follower(int32_t epoch, int32_t leader, int64_t now_ms, bool fetch_now = true);
  void become_prospective(int64_t now_ms);
  void become_candidate(int64_t now_ms);
  void become_leader(int64_t now_ms);
  void become_resigned(int64_t now_ms);
  // Any message carrying a higher epoch moves us into it.
  bool observe_epoch(int32_t epoch, int32_t leader, int64_t now_ms);
  void persist();
  void set_leader_changed() { out_.leader_changed = true; }

  // Handlers.
  vote_response on_vote(int32_t from, const vote_request& r, int64_t now_ms);
  begin_epoch_response on_begin_epoch(int32_t from, const begin_epoch_request& r, int64_t now_ms);
  end_epoch_response on_end_epoch(int32_t from, const end_epoch_request& r, int64_t now_ms);
  std::optional<fetch_response> on_fetch(int32_t from, uint64_t token, const fetch_request& r, int64_t now_ms);
  fetch_snapshot_response on_fetch_snapshot(int32_t from, const fetch_snapshot_request& r, int64_t now_ms);
  void on_vote_response(int32_t from, const in_flight& f, const vote_response& r, int64_t now_ms);
  void on_begin_epoch_response(int32_t from, const begin_epoch_response& r, int64_t now_ms);
  void on_fetch_response(int32_t from, const fetch_response& r, int64_t now_ms);
  void on_fetch_snapshot_response(int32_t from, const fetch_snapshot_response& r, int64_t now_ms);

  // Leader helpers.
  fetch_response answer_fetch(int32_t from, const fetch_request& r, int64_t now_ms);
  void update_high_watermark(int64_t now_ms);
  void complete_parked_fetches(int64_t now_ms, bool all);
  void send_begin_epoch(int32_t to, int64_t now_ms);
  void check_quorum(int64_t now_ms);

  // Follower helpers.
  void send_fetch(int64_t now_ms);
  void send_fetch_snapshot(int64_t now_ms);
  void append_as_follower(const fetch_response& r, int64_t now_ms);
  void advance_high_watermark_to(int64_t hw);

  // Elections.
  void send_votes(bool pre_vote, int64_t now_ms);
  bool log_up_to_date(const offset_and_epoch& candidate_last) const;
  size_t majority() const { return config_.voters.size() / 2 + 1; }
  bool is_voter(int32_t id) const;
  int64_t random_election_timeout();
  int64_t election_backoff();

  // Log shape.
  // Kafka's endOffsetForEpoch: the largest epoch <= e in the log and the
  // offset where the epoch after it starts (or the log end).
  offset_and_epoch end_offset_for_epoch(int32_t e) const;
  void note_epoch(int32_t epoch, int64_t start_offset);
  void truncate_shape(int64_t offset);

  uint64_t send(int32_t to, request msg, in_flight::kind what);
  void respond(uint64_t token, response msg) { out_.responses.push_back({token, std::move(msg)}); }

  core_config config_;
  std::function<uint64_t()> random_;
  ready out_;

  role role_ = role::unattached;
  int32_t epoch_ = 0;
  int32_t voted_id_ = -1;
  int32_t leader_id_ = -1;
  election_state persisted_;

  int64_t log_start_ = 0;
  int64_t log_end_ = 0;
  std::vector<epoch_entry> epochs_;
  std::optional<offset_and_epoch> snapshot_;
  int64_t high_watermark_ = -1;

  int64_t now_ms_ = 0;
  int64_t election_deadline_ms_ = INT64_MAX;  // unattached, voted, prospective, candidate, resigned
  int64_t fetch_deadline_ms_ = INT64_MAX;     // follower: no successful fetch by then
  int64_t retry_at_ms_ = INT64_MAX;           // a failed request to resend
  int failed_elections_ = 0;
  bool leader_resigning_ = false;             // follower: the leader sent EndQuorumEpoch
  int32_t abandoned_leader_ = -1;             // the leader of this epoch we timed out on

  // Elections.
  std::set<int32_t> granted_, rejected_;

  // Leader.
  int64_t epoch_start_offset_ = -1;
  std::map<int32_t, voter_progress> voters_progress_;
  std::map<int32_t, voter_progress> observers_progress_;
  std::set<int32_t> begin_epoch_acked_;
  std::vector<parked_fetch> parked_;
  int64_t check_quorum_deadline_ms_ = INT64_MAX;
  int64_t begin_epoch_refresh_ms_ = INT64_MAX;

  // Follower.
  uint64_t fetch_id_ = 0;  // the fetch in flight, 0 if none
  std::optional<snapshot_download> download_;

  uint64_t next_request_id_ = 1;
  std::map<uint64_t, in_flight> in_flight_;
};

}  // namespace gregor::raft
