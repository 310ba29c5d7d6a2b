#include "raft/core.h"

#include <algorithm>

#include "base/assert.h"

namespace gregor::raft {

namespace {
constexpr int64_t kNever = INT64_MAX;
}  // namespace

const char* role_name(role r) {
  switch (r) {
    case role::unattached: return "unattached";
    case role::voted: return "voted";
    case role::prospective: return "prospective";
    case role::candidate: return "candidate";
    case role::leader: return "leader";
    case role::follower: return "follower";
    case role::resigned: return "resigned";
  }
  return "?";
}

core::core(core_config config, election_state persisted, log_shape log, int64_t now_ms,
           std::function<uint64_t()> random)
    : config_(std::move(config)), random_(std::move(random)) {
  std::sort(config_.voters.begin(), config_.voters.end());
  epoch_ = persisted.epoch;
  voted_id_ = persisted.voted_id;
  leader_id_ = persisted.leader_id;
  persisted_ = persisted;
  log_start_ = log.log_start_offset;
  log_end_ = log.log_end_offset;
  epochs_ = std::move(log.epochs);
  snapshot_ = log.latest_snapshot;
  now_ms_ = now_ms;
  // Where a restart leaves us: a leader lost what only lived in memory, so
  // it waits for the next election like anyone else; a known leader is
  // followed again; otherwise nobody leads that we know of.
  if (leader_id_ == config_.node_id && is_voter()) {
    leader_id_ = -1;
    persist();
    role_ = voted_id_ >= 0 ? role::voted : role::unattached;
    election_deadline_ms_ = now_ms + random_election_timeout();
  } else if (leader_id_ >= 0) {
    become_follower(epoch_, leader_id_, now_ms);
  } else {
    role_ = voted_id_ >= 0 ? role::voted : role::unattached;
    election_deadline_ms_ = now_ms + random_election_timeout();
    if (!is_voter()) {
      election_deadline_ms_ = kNever;  // observers never stand
      send_fetch(now_ms);
    }
  }
  // A quorum of one has no one to wait for.
  if (is_voter() && config_.voters.size() == 1 && role_ != role::leader) election_deadline_ms_ = now_ms;
}

// ---- helpers

bool core::is_voter(int32_t id) const {
  return std::binary_search(config_.voters.begin(), config_.voters.end(), id);
}

int64_t core::random_election_timeout() {
  int64_t t = config_.election_timeout_ms;
  return t + static_cast<int64_t>(random_() % static_cast<uint64_t>(std::max<int64_t>(t, 1)));
}

int64_t core::election_backoff() {
  int shift = std::min(failed_elections_, 20);
  int64_t base = std::min<int64_t>(config_.election_backoff_max_ms, config_.retry_backoff_ms << shift);
  base = std::max<int64_t>(base, 1);
  return base / 2 + static_cast<int64_t>(random_() % static_cast<uint64_t>(base / 2 + 1));
}

int32_t core::epoch_at(int64_t offset) const {
  int32_t e = 0;
  for (auto& entry : epochs_) {
    if (entry.start_offset > offset) break;
    e = entry.epoch;
  }
  return e;
}

offset_and_epoch core::last_log() const {
  int32_t e = epochs_.empty() ? 0 : epochs_.back().epoch;
  if (snapshot_ && log_end_ == snapshot_->offset && (epochs_.empty() || epochs_.back().epoch < snapshot_->epoch))
    e = snapshot_->epoch;
  return {log_end_, e};
}

offset_and_epoch core::end_offset_for_epoch(int32_t e) const {
  if (epochs_.empty()) return {log_end_, 0};
  // The largest epoch <= e.
  auto it = std::upper_bound(epochs_.begin(), epochs_.end(), e,
                             [](int32_t v, const epoch_entry& x) { return v < x.epoch; });
  if (it == epochs_.begin()) return {epochs_.front().start_offset, -1};
  auto found = std::prev(it);
  int64_t end = it == epochs_.end() ? log_end_ : it->start_offset;
  return {end, found->epoch};
}

void core::note_epoch(int32_t epoch, int64_t start_offset) {
  if (!epochs_.empty() && epochs_.back().epoch >= epoch) return;
  epochs_.push_back({epoch, start_offset});
}

void core::truncate_shape(int64_t offset) {
  log_end_ = offset;
  while (!epochs_.empty() && epochs_.back().start_offset >= offset) epochs_.pop_back();
}

bool core::log_up_to_date(const offset_and_epoch& candidate_last) const {
  auto mine = last_log();
  if (candidate_last.epoch != mine.epoch) return candidate_last.epoch > mine.epoch;
  return candidate_last.offset >= mine.offset;
}

void core::persist() {
  election_state now{epoch_, voted_id_, leader_id_};
  if (now == persisted_) return;
  if (now.epoch != persisted_.epoch || now.leader_id != persisted_.leader_id) set_leader_changed();
  persisted_ = now;
  out_.persist = now;
}

uint64_t core::send(int32_t to, request msg, in_flight::kind what) {
  uint64_t id = next_request_id_++;
  in_flight_[id] = in_flight{to, epoch_, what};
  out_.requests.push_back({id, to, std::move(msg)});
  return id;
}

ready core::take_ready() {
  ready r = std::move(out_);
  out_ = ready{};
  return r;
}

int64_t core::next_deadline_ms() const {
  int64_t d = std::min({election_deadline_ms_, fetch_deadline_ms_, retry_at_ms_, check_quorum_deadline_ms_});
  if (role_ == role::leader) d = std::min(d, begin_epoch_refresh_ms_);
  for (auto& p : parked_) d = std::min(d, p.deadline_ms);
  return d;
}

// ---- transitions

void core::become_unattached(int32_t epoch, int64_t now_ms) {
  retry_at_ms_ = kNever;  // retries belong to the role we leave
  bool was_leader = role_ == role::leader;
  if (epoch > epoch_) {
    epoch_ = epoch;
    voted_id_ = -1;
    abandoned_leader_ = -1;
  }
  leader_id_ = -1;
  role_ = voted_id_ >= 0 ? role::voted : role::unattached;
  if (was_leader) complete_parked_fetches(now_ms, true);
  download_.reset();
  fetch_id_ = 0;
  leader_resigning_ = false;
  persist();
  set_leader_changed();
  election_deadline_ms_ = now_ms + random_election_timeout();
  fetch_deadline_ms_ = kNever;
  check_quorum_deadline_ms_ = kNever;
  if (!is_voter()) {
    election_deadline_ms_ = kNever;
    send_fetch(now_ms);
  }
}

void core::become_voted(int32_t candidate, int64_t now_ms) {
  retry_at_ms_ = kNever;  // retries belong to the role we leave
  voted_id_ = candidate;
  leader_id_ = -1;
  role_ = role::voted;
  persist();
  election_deadline_ms_ = now_ms + random_election_timeout();
  fetch_deadline_ms_ = kNever;
}

void core::become_follower(int32_t epoch, int32_t leader, int64_t now_ms, bool fetch_now) {
  GREGOR_ASSERT(!(role_ == role::leader && epoch == epoch_), "node {} leads epoch {} and heard of leader {} in it",
                config_.node_id, epoch, leader);
  retry_at_ms_ = kNever;
  bool was_leader = role_ == role::leader;
  if (epoch > epoch_) {
    voted_id_ = -1;
    download_.reset();
  }
  epoch_ = epoch;
  leader_id_ = leader;
  abandoned_leader_ = -1;
  role_ = role::follower;
  if (was_leader) complete_parked_fetches(now_ms, true);
  persist();
  set_leader_changed();
  failed_elections_ = 0;
  leader_resigning_ = false;
  fetch_id_ = 0;
  election_deadline_ms_ = kNever;
  check_quorum_deadline_ms_ = kNever;
  fetch_deadline_ms_ = now_ms + config_.fetch_timeout_ms;
  if (fetch_now) send_fetch(now_ms);
}

void core::become_prospective(int64_t now_ms) {
  if (!is_voter()) return;
  retry_at_ms_ = kNever;  // retries belong to the role we leave
  leader_id_ = -1;
  role_ = role::prospective;
  persist();
  set_leader_changed();
  download_.reset();
  fetch_id_ = 0;
  fetch_deadline_ms_ = kNever;
  check_quorum_deadline_ms_ = kNever;
  granted_ = {config_.node_id};
  rejected_.clear();
  election_deadline_ms_ = now_ms + random_election_timeout();
  if (granted_.size() >= majority()) {
    become_candidate(now_ms);
    return;
  }
  send_votes(true, now_ms);
}

void core::become_candidate(int64_t now_ms) {
  retry_at_ms_ = kNever;  // retries belong to the role we leave
  ++epoch_;
  abandoned_leader_ = -1;
  voted_id_ = config_.node_id;
  leader_id_ = -1;
  role_ = role::candidate;
  persist();
  granted_ = {config_.node_id};
  rejected_.clear();
  election_deadline_ms_ = now_ms + random_election_timeout();
  if (granted_.size() >= majority()) {
    become_leader(now_ms);
    return;
  }
  send_votes(false, now_ms);
}

void core::become_leader(int64_t now_ms) {
  role_ = role::leader;
  leader_id_ = config_.node_id;
  persist();
  set_leader_changed();
  failed_elections_ = 0;
  election_deadline_ms_ = kNever;
  fetch_deadline_ms_ = kNever;
  retry_at_ms_ = kNever;
  // The epoch's first record: once it commits, so does everything before it.
  epoch_start_offset_ = log_end_;
  log_op op{log_op::kind::append_leader_change};
  op.epoch = epoch_;
  op.offset = log_end_;
  op.leader_id = config_.node_id;
  op.voters = config_.voters;
  out_.log.push_back(std::move(op));
  note_epoch(epoch_, log_end_);
  log_end_ += 1;
  voters_progress_.clear();
  observers_progress_.clear();
  for (int32_t v : config_.voters) voters_progress_[v] = voter_progress{};
  voters_progress_[config_.node_id].log_end_offset = log_end_;
  voters_progress_[config_.node_id].last_fetch_ms = now_ms;
  begin_epoch_acked_ = {config_.node_id};
  for (int32_t v : config_.voters)
    if (v != config_.node_id) send_begin_epoch(v, now_ms);
  // A quorum of one has nobody to hear from.
  check_quorum_deadline_ms_ = config_.voters.size() > 1 ? now_ms + config_.fetch_timeout_ms * 3 / 2 : kNever;
  begin_epoch_refresh_ms_ = config_.voters.size() > 1 ? now_ms + config_.fetch_timeout_ms : kNever;
  update_high_watermark(now_ms);
}

void core::become_resigned(int64_t now_ms) {
  if (role_ != role::leader) return;
  retry_at_ms_ = kNever;  // retries belong to the role we leave
  // Successors in the order of how far they have caught up.
  std::vector<std::pair<int64_t, int32_t>> order;
  for (auto& [id, p] : voters_progress_)
    if (id != config_.node_id) order.push_back({p.log_end_offset, id});
  std::sort(order.begin(), order.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  end_epoch_request req;
  req.leader_id = config_.node_id;
  req.leader_epoch = epoch_;
  for (auto& [_, id] : order) req.preferred_successors.push_back(id);
  role_ = role::resigned;
  complete_parked_fetches(now_ms, true);
  leader_id_ = -1;
  persist();
  set_leader_changed();
  check_quorum_deadline_ms_ = kNever;
  for (auto& [_, id] : order) send(id, req, in_flight::kind::end_epoch);
  election_deadline_ms_ = now_ms + random_election_timeout();
}

bool core::observe_epoch(int32_t epoch, int32_t leader, int64_t now_ms) {
  if (epoch > epoch_) {
    if (leader >= 0 && leader != config_.node_id) become_follower(epoch, leader, now_ms);
    else become_unattached(epoch, now_ms);
    return true;
  }
  // Another node's word that `leader` leads our epoch; not for the leader we
  // gave up on ourselves (others may not have noticed yet that it is gone;
  // it will send BeginQuorumEpoch again if it is alive).
  if (epoch == epoch_ && leader >= 0 && leader != config_.node_id && leader_id_ < 0 && role_ != role::leader &&
      role_ != role::resigned && leader != abandoned_leader_) {
    become_follower(epoch, leader, now_ms);
    return true;
  }
  return false;
}

// ---- inputs

void core::tick(int64_t now_ms) {
  now_ms_ = now_ms;
  switch (role_) {
    case role::leader: {
      // Fetches that waited long enough.
      bool due = false;
      for (auto& p : parked_) due = due || p.deadline_ms <= now_ms;
      if (due) complete_parked_fetches(now_ms, false);
      check_quorum(now_ms);
      if (role_ == role::leader && config_.voters.size() > 1 && now_ms >= begin_epoch_refresh_ms_) {
        // Voters that have not fetched for a while may have given up on us
        // (a partition that healed): remind them who leads.
        begin_epoch_refresh_ms_ = now_ms + config_.fetch_timeout_ms / 2;
        for (auto& [id, p] : voters_progress_)
          if (id != config_.node_id && (p.last_fetch_ms < 0 || p.last_fetch_ms < now_ms - config_.fetch_timeout_ms))
            begin_epoch_acked_.erase(id);
        retry_at_ms_ = std::min(retry_at_ms_, now_ms);
      }
      if (role_ == role::leader && now_ms >= retry_at_ms_) {
        retry_at_ms_ = kNever;
        for (int32_t v : config_.voters) {
          if (begin_epoch_acked_.count(v)) continue;
          bool pending = false;
          for (auto& [_, f] : in_flight_) pending = pending || (f.to == v && f.what == in_flight::kind::begin_epoch);
          if (!pending) send_begin_epoch(v, now_ms);
        }
      }
      break;
    }
    case role::follower:
      if (now_ms >= fetch_deadline_ms_) {
        abandoned_leader_ = leader_id_;
        if (is_voter()) become_prospective(now_ms);
        else become_unattached(epoch_, now_ms);
        break;
      }
      if (now_ms >= retry_at_ms_) {
        retry_at_ms_ = kNever;
        if (download_) send_fetch_snapshot(now_ms);
        else send_fetch(now_ms);
      }
      break;
    case role::unattached:
    case role::voted:
    case role::resigned:
      if (is_voter() && now_ms >= election_deadline_ms_) {
        become_prospective(now_ms);
        break;
      }
      if (!is_voter() && now_ms >= retry_at_ms_) {
        retry_at_ms_ = kNever;
        send_fetch(now_ms);
      }
      break;
    case role::prospective:
    case role::candidate:
      if (now_ms >= election_deadline_ms_) {
        // Lost, or not heard from enough voters: try again after a backoff.
        ++failed_elections_;
        if (role_ == role::candidate) {
          become_prospective(now_ms);
        } else {
          role_ = voted_id_ >= 0 ? role::voted : role::unattached;
          election_deadline_ms_ = now_ms + election_backoff() + random_election_timeout() / 2;
        }
        break;
      }
      if (now_ms >= retry_at_ms_) {
        retry_at_ms_ = kNever;
        send_votes(role_ == role::prospective, now_ms);
      }
      break;
  }
  // A retry the current role had no use for is dropped, never left due.
  if (retry_at_ms_ <= now_ms) retry_at_ms_ = kNever;
}

void core::handle_request(int32_t from, uint64_t token, const request& r, int64_t now_ms) {
  now_ms_ = now_ms;
  std::visit(
      [&](auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, vote_request>) respond(token, on_vote(from, m, now_ms));
        else if constexpr (std::is_same_v<T, begin_epoch_request>) respond(token, on_begin_epoch(from, m, now_ms));
        else if constexpr (std::is_same_v<T, end_epoch_request>) respond(token, on_end_epoch(from, m, now_ms));
        else if constexpr (std::is_same_v<T, fetch_request>) {
          if (auto resp = on_fetch(from, token, m, now_ms)) respond(token, std::move(*resp));
        } else {
          respond(token, on_fetch_snapshot(from, m, now_ms));
        }
      },
      r);
}

void core::handle_response(int32_t from, uint64_t request_id, const response& r, int64_t now_ms) {
  now_ms_ = now_ms;
  auto it = in_flight_.find(request_id);
  if (it == in_flight_.end()) return;  // a duplicate, or one we gave up on
  in_flight f = it->second;
  in_flight_.erase(it);
  std::visit(
      [&](auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, vote_response>) {
          on_vote_response(from, f, m, now_ms);
        } else if constexpr (std::is_same_v<T, begin_epoch_response>) {
          on_begin_epoch_response(from, m, now_ms);
        } else if constexpr (std::is_same_v<T, end_epoch_response>) {
          observe_epoch(m.leader_epoch, m.leader_id, now_ms);
        } else if constexpr (std::is_same_v<T, fetch_response>) {
          if (f.what != in_flight::kind::fetch) return;
          if (request_id != fetch_id_) {
            // An answer to a fetch of an earlier epoch: only its epoch matters.
            observe_epoch(m.leader_epoch, m.leader_id, now_ms);
            return;
          }
          fetch_id_ = 0;
          on_fetch_response(from, m, now_ms);
        } else {
          if (f.epoch != epoch_) {
            observe_epoch(m.leader_epoch, m.leader_id, now_ms);
            return;
          }
          on_fetch_snapshot_response(from, m, now_ms);
        }
      },
      r);
}

void core::handle_request_failure(int32_t to, uint64_t request_id, int64_t now_ms) {
  now_ms_ = now_ms;
  auto it = in_flight_.find(request_id);
  if (it == in_flight_.end()) return;
  auto what = it->second.what;
  in_flight_.erase(it);
  (void)to;
  if (request_id == fetch_id_) fetch_id_ = 0;
  if (what == in_flight::kind::end_epoch) return;  // best effort
  retry_at_ms_ = std::min(retry_at_ms_, now_ms + config_.retry_backoff_ms);
}

std::optional<int64_t> core::propose(std::vector<bytes> records, int64_t now_ms) {
  now_ms_ = now_ms;
  if (role_ != role::leader || records.empty()) return std::nullopt;
  log_op op{log_op::kind::append_records};
  op.epoch = epoch_;
  op.offset = log_end_;
  int64_t n = static_cast<int64_t>(records.size());
  op.records = std::move(records);
  out_.log.push_back(std::move(op));
  log_end_ += n;
  voters_progress_[config_.node_id].log_end_offset = log_end_;
  update_high_watermark(now_ms);
  complete_parked_fetches(now_ms, false);
  return log_end_ - 1;
}

void core::resign(int64_t now_ms) {
  now_ms_ = now_ms;
  if (role_ == role::leader && config_.voters.size() > 1) become_resigned(now_ms);
}

void core::snapshot_written(offset_and_epoch id) {
  if (snapshot_ && *snapshot_ >= id) return;
  GREGOR_ASSERT(id.offset <= high_watermark_, "snapshot at {} is above the high watermark {}", id.offset,
                high_watermark_);
  snapshot_ = id;
  if (id.offset > log_start_) {
    log_op op{log_op::kind::delete_before};
    op.snapshot = id;
    out_.log.push_back(std::move(op));
    log_start_ = std::min(id.offset, log_end_);
  }
}

// ---- votes

vote_response core::on_vote(int32_t from, const vote_request& r, int64_t now_ms) {
  auto answer = [&](bool granted) { return vote_response{error_code::none, leader_id_, epoch_, granted}; };
  if (!is_voter() || !is_voter(r.candidate_id) || r.candidate_id != from)
    return vote_response{error_code::inconsistent_voter_set, leader_id_, epoch_, false};
  if (r.pre_vote) {
    // A pre-vote changes nothing here. It is granted if the candidate's log
    // is at least as up to date and no leader is known to be alive: a
    // follower that heard from its leader within the fetch timeout says no,
    // so a node coming back from a partition cannot disturb a healthy quorum.
    if (r.candidate_epoch < epoch_) return answer(false);
    bool leader_alive = role_ == role::leader ||
                        (role_ == role::follower && !leader_resigning_ && now_ms < fetch_deadline_ms_);
    return answer(!leader_alive && log_up_to_date(r.last_log));
  }
  if (r.candidate_epoch < epoch_) return answer(false);
  if (r.candidate_epoch > epoch_) become_unattached(r.candidate_epoch, now_ms);
  if (role_ == role::leader || role_ == role::follower || role_ == role::resigned) return answer(false);
  if (voted_id_ >= 0 && voted_id_ != r.candidate_id) return answer(false);
  if (!log_up_to_date(r.last_log)) return answer(false);
  if (voted_id_ != r.candidate_id) become_voted(r.candidate_id, now_ms);
  return answer(true);
}

void core::send_votes(bool pre_vote, int64_t now_ms) {
  (void)now_ms;
  vote_request req;
  req.candidate_epoch = pre_vote ? epoch_ + 1 : epoch_;
  req.candidate_id = config_.node_id;
  req.last_log = last_log();
  req.pre_vote = pre_vote;
  auto kind = pre_vote ? in_flight::kind::pre_vote : in_flight::kind::vote;
  for (int32_t v : config_.voters) {
    if (v == config_.node_id || granted_.count(v) || rejected_.count(v)) continue;
    bool pending = false;
    for (auto& [_, f] : in_flight_) pending = pending || (f.to == v && f.what == kind && f.epoch == epoch_);
    if (!pending) send(v, req, kind);
  }
}

void core::on_vote_response(int32_t from, const in_flight& f, const vote_response& r, int64_t now_ms) {
  if (observe_epoch(r.leader_epoch, r.leader_id, now_ms)) return;
  if (f.epoch != epoch_) return;
  bool pre = f.what == in_flight::kind::pre_vote;
  if ((pre && role_ != role::prospective) || (!pre && role_ != role::candidate)) return;
  if (r.error != error_code::none) {
    retry_at_ms_ = std::min(retry_at_ms_, now_ms + config_.retry_backoff_ms);
    return;
  }
  (r.vote_granted ? granted_ : rejected_).insert(from);
  if (granted_.size() >= majority()) {
    if (pre) become_candidate(now_ms);
    else become_leader(now_ms);
    return;
  }
  if (config_.voters.size() - rejected_.size() < majority()) {
    // This election cannot be won.
    ++failed_elections_;
    if (pre) {
      role_ = voted_id_ >= 0 ? role::voted : role::unattached;
      election_deadline_ms_ = now_ms + election_backoff() + random_election_timeout() / 2;
    } else {
      election_deadline_ms_ = std::min(election_deadline_ms_, now_ms + election_backoff());
    }
  }
}

// ---- epochs

begin_epoch_response core::on_begin_epoch(int32_t from, const begin_epoch_request& r, int64_t now_ms) {
  (void)from;
  if (r.leader_epoch < epoch_) return {error_code::fenced_leader_epoch, leader_id_, epoch_};
  if (r.leader_epoch == epoch_ && (role_ == role::leader || role_ == role::resigned))
    return {error_code::none, leader_id_, epoch_};
  if (!(role_ == role::follower && epoch_ == r.leader_epoch && leader_id_ == r.leader_id))
    become_follower(r.leader_epoch, r.leader_id, now_ms);
  return {error_code::none, leader_id_, epoch_};
}

void core::send_begin_epoch(int32_t to, int64_t now_ms) {
  (void)now_ms;
  begin_epoch_request req{config_.node_id, epoch_};
  send(to, req, in_flight::kind::begin_epoch);
}

void core::on_begin_epoch_response(int32_t from, const begin_epoch_response& r, int64_t now_ms) {
  if (observe_epoch(r.leader_epoch, r.leader_id, now_ms)) return;
  if (role_ != role::leader) return;
  if (r.error == error_code::none && r.leader_epoch == epoch_) {
    begin_epoch_acked_.insert(from);
  } else {
    retry_at_ms_ = std::min(retry_at_ms_, now_ms + config_.retry_backoff_ms);
  }
}

end_epoch_response core::on_end_epoch(int32_t from, const end_epoch_request& r, int64_t now_ms) {
  (void)from;
  if (r.leader_epoch < epoch_) return {error_code::fenced_leader_epoch, leader_id_, epoch_};
  observe_epoch(r.leader_epoch, r.leader_id, now_ms);
  if (role_ == role::follower && epoch_ == r.leader_epoch && leader_id_ == r.leader_id) {
    // The leader is going: stand for election soon, the best-placed successor first.
    leader_resigning_ = true;
    auto pos = std::find(r.preferred_successors.begin(), r.preferred_successors.end(), config_.node_id) -
               r.preferred_successors.begin();
    int64_t wait = pos == 0 ? 0
                            : std::min<int64_t>(config_.election_backoff_max_ms,
                                                config_.retry_backoff_ms << std::min<int64_t>(pos, 20));
    fetch_deadline_ms_ = std::min(fetch_deadline_ms_, now_ms + wait);
  }
  return {error_code::none, leader_id_, epoch_};
}

// ---- fetch: leader side

std::optional<fetch_response> core::on_fetch(int32_t from, uint64_t token, const fetch_request& r, int64_t now_ms) {
  fetch_response resp;
  resp.leader_id = leader_id_;
  resp.leader_epoch = epoch_;
  if (r.fetch_offset < 0 || r.last_fetched_epoch < 0) {
    resp.error = error_code::invalid_request;
    return resp;
  }
  if (r.current_leader_epoch < epoch_) {
    resp.error = error_code::fenced_leader_epoch;
    return resp;
  }
  if (r.current_leader_epoch > epoch_) {
    resp.error = error_code::unknown_leader_epoch;
    return resp;
  }
  if (role_ != role::leader) {
    resp.error = error_code::not_leader_or_follower;
    return resp;
  }
  const int64_t told = (is_voter(from) ? voters_progress_[from] : observers_progress_[from]).last_sent_high_watermark;
  resp = answer_fetch(from, r, now_ms);
  // Park a fetch that would bring the replica nothing it does not have: no
  // records, and no high watermark it has not been told.
  bool nothing_new = resp.error == error_code::none && resp.read_from < 0 && !resp.diverging_epoch &&
                     !resp.snapshot_id && r.max_wait_ms > 0 && high_watermark_ <= told;
  if (nothing_new) {
    int64_t wait = std::min<int64_t>(r.max_wait_ms, config_.fetch_max_wait_ms);
    parked_.push_back({from, token, r, now_ms + wait});
    return std::nullopt;
  }
  return resp;
}

fetch_response core::answer_fetch(int32_t from, const fetch_request& r, int64_t now_ms) {
  fetch_response resp;
  resp.leader_id = config_.node_id;
  resp.leader_epoch = epoch_;
  resp.log_start_offset = log_start_;
  resp.high_watermark = std::max<int64_t>(high_watermark_, 0);
  if (snapshot_ && r.fetch_offset < log_start_) {
    resp.snapshot_id = *snapshot_;
    return resp;
  }
  if (r.fetch_offset > 0 || r.last_fetched_epoch > 0) {
    auto end = end_offset_for_epoch(r.last_fetched_epoch);
    if (end.epoch != r.last_fetched_epoch || r.fetch_offset > end.offset) {
      if (end.offset < log_start_ && snapshot_) resp.snapshot_id = *snapshot_;
      else resp.diverging_epoch = offset_and_epoch{end.offset, end.epoch};
      return resp;
    }
  }
  auto& progress = is_voter(from) ? voters_progress_[from] : observers_progress_[from];
  progress.log_end_offset = r.fetch_offset;
  progress.last_fetch_ms = now_ms;
  if (r.fetch_offset >= log_end_) progress.last_caught_up_ms = now_ms;
  if (is_voter(from)) begin_epoch_acked_.insert(from);
  update_high_watermark(now_ms);
  resp.high_watermark = std::max<int64_t>(high_watermark_, 0);
  progress.last_sent_high_watermark = high_watermark_;
  if (r.fetch_offset < log_end_) {
    resp.read_from = r.fetch_offset;
    resp.read_max_bytes = config_.fetch_max_bytes;
  }
  return resp;
}

void core::update_high_watermark(int64_t now_ms) {
  if (role_ != role::leader) return;
  std::vector<int64_t> ends;
  for (int32_t v : config_.voters) ends.push_back(v == config_.node_id ? log_end_ : voters_progress_[v].log_end_offset);
  std::sort(ends.begin(), ends.end(), std::greater<>());
  int64_t candidate = ends[majority() - 1];
  // Only a majority holding a record of this epoch commits; earlier epochs'
  // records then commit with it (Raft's rule, which the LeaderChange record
  // at the start of every epoch makes quick).
  if (candidate > epoch_start_offset_ && candidate > high_watermark_) {
    high_watermark_ = candidate;
    out_.high_watermark_changed = true;
    complete_parked_fetches(now_ms, true);
  }
}

void core::complete_parked_fetches(int64_t now_ms, bool all) {
  if (parked_.empty()) return;
  std::vector<parked_fetch> keep;
  auto parked = std::move(parked_);
  parked_.clear();
  for (auto& p : parked) {
    bool done = all || now_ms >= p.deadline_ms || log_end_ > p.req.fetch_offset;
    if (!done) {
      keep.push_back(std::move(p));
      continue;
    }
    fetch_response resp;
    if (role_ != role::leader) {
      resp.error = epoch_ > p.req.current_leader_epoch ? error_code::fenced_leader_epoch
                                                       : error_code::not_leader_or_follower;
      resp.leader_id = leader_id_;
      resp.leader_epoch = epoch_;
    } else {
      resp = answer_fetch(p.from, p.req, now_ms);
    }
    respond(p.token, std::move(resp));
  }
  for (auto& p : keep) parked_.push_back(std::move(p));
}

void core::check_quorum(int64_t now_ms) {
  if (role_ != role::leader || config_.voters.size() == 1 || now_ms < check_quorum_deadline_ms_) return;
  const int64_t window = config_.fetch_timeout_ms * 3 / 2;
  size_t heard = 1;  // this node
  for (auto& [id, p] : voters_progress_)
    if (id != config_.node_id && p.last_fetch_ms >= 0 && p.last_fetch_ms >= now_ms - window) ++heard;
  if (heard >= majority()) {
    check_quorum_deadline_ms_ = now_ms + window / 3;
    return;
  }
  // Cut off from the majority: a leader that cannot commit steps down, so
  // that the rest can elect one that can.
  become_resigned(now_ms);
}

fetch_snapshot_response core::on_fetch_snapshot(int32_t from, const fetch_snapshot_request& r, int64_t now_ms) {
  fetch_snapshot_response resp;
  resp.leader_id = leader_id_;
  resp.leader_epoch = epoch_;
  resp.snapshot_id = r.snapshot_id;
  resp.position = r.position;
  if (r.current_leader_epoch < epoch_) {
    resp.error = error_code::fenced_leader_epoch;
    return resp;
  }
  if (r.current_leader_epoch > epoch_) {
    resp.error = error_code::unknown_leader_epoch;
    return resp;
  }
  if (role_ != role::leader) {
    resp.error = error_code::not_leader_or_follower;
    return resp;
  }
  if (!snapshot_ || *snapshot_ != r.snapshot_id) {
    resp.error = error_code::snapshot_not_found;
    return resp;
  }
  if (r.position < 0) {
    resp.error = error_code::position_out_of_range;
    return resp;
  }
  // A replica downloading a snapshot is alive, for check-quorum.
  auto& progress = is_voter(from) ? voters_progress_[from] : observers_progress_[from];
  progress.last_fetch_ms = now_ms;
  resp.read_max_bytes = std::max(1, std::min(r.max_bytes, config_.snapshot_chunk_bytes));
  return resp;
}

// ---- fetch: follower side

void core::send_fetch(int64_t now_ms) {
  (void)now_ms;
  if (fetch_id_ != 0 || download_) return;
  int32_t target = leader_id_;
  if (target < 0 || target == config_.node_id) {
    if (is_voter()) return;  // a voter without a leader waits for an election
    std::vector<int32_t> others;
    for (int32_t v : config_.voters)
      if (v != config_.node_id) others.push_back(v);
    if (others.empty()) return;
    target = others[random_() % others.size()];
  }
  fetch_request req;
  req.replica_id = config_.node_id;
  req.current_leader_epoch = epoch_;
  req.fetch_offset = log_end_;
  req.last_fetched_epoch = last_log().epoch;
  req.max_wait_ms = config_.fetch_max_wait_ms;
  fetch_id_ = send(target, req, in_flight::kind::fetch);
}

void core::on_fetch_response(int32_t from, const fetch_response& r, int64_t now_ms) {
  if (observe_epoch(r.leader_epoch, r.leader_id, now_ms)) return;
  if (r.error == error_code::not_leader_or_follower && role_ == role::follower && from == leader_id_ &&
      r.leader_epoch == epoch_ && r.leader_id != leader_id_) {
    // Our leader says it leads no more (it restarted, or resigned): stop
    // following it, and stand for election if we may.
    abandoned_leader_ = leader_id_;
    if (r.leader_id >= 0) become_follower(epoch_, r.leader_id, now_ms);
    else if (is_voter()) become_prospective(now_ms);
    else become_unattached(epoch_, now_ms);
    return;
  }
  if (r.error != error_code::none) {
    // An observer asking the wrong voter learns the leader above; anything
    // else is retried after a backoff.
    retry_at_ms_ = std::min(retry_at_ms_, now_ms + config_.retry_backoff_ms);
    return;
  }
  // An answer without error comes from the leader itself: follow it (an
  // observer finds the leader this way, and takes the records at once).
  if (role_ != role::leader && r.leader_epoch == epoch_ && r.leader_id == from && leader_id_ != from)
    become_follower(epoch_, from, now_ms, false);
  if (role_ != role::follower || from != leader_id_) {
    retry_at_ms_ = std::min(retry_at_ms_, now_ms + config_.retry_backoff_ms);
    return;
  }
  fetch_deadline_ms_ = now_ms + config_.fetch_timeout_ms;
  leader_resigning_ = false;
  if (r.diverging_epoch) {
    auto local = end_offset_for_epoch(r.diverging_epoch->epoch);
    int64_t to = std::min(r.diverging_epoch->offset, local.offset);
    to = std::max(to, log_start_);
    GREGOR_ASSERT(high_watermark_ < 0 || to >= high_watermark_,
                  "node {} would truncate to {} below its high watermark {} (leader {} epoch {})", config_.node_id,
                  to, high_watermark_, leader_id_, epoch_);
    if (to < log_end_) {
      log_op op{log_op::kind::truncate_to};
      op.offset = to;
      out_.log.push_back(std::move(op));
      truncate_shape(to);
    }
    send_fetch(now_ms);
    return;
  }
  if (r.snapshot_id) {
    download_ = snapshot_download{*r.snapshot_id, 0};
    send_fetch_snapshot(now_ms);
    return;
  }
  if (!r.batches.empty()) append_as_follower(r, now_ms);
  if (r.high_watermark >= 0) advance_high_watermark_to(std::min(r.high_watermark, log_end_));
  send_fetch(now_ms);
}

void core::append_as_follower(const fetch_response& r, int64_t now_ms) {
  (void)now_ms;
  // Only what continues our log exactly (a late or duplicated response may overlap).
  if (r.batches.front().base_offset != log_end_) return;
  int64_t expect = log_end_;
  for (auto& b : r.batches) {
    if (b.base_offset != expect || b.last_offset < b.base_offset) return;
    expect = b.last_offset + 1;
  }
  log_op op{log_op::kind::append_batches};
  op.data = r.records;
  op.offset = log_end_;
  out_.log.push_back(std::move(op));
  for (auto& b : r.batches) note_epoch(b.epoch, b.base_offset);
  log_end_ = expect;
}

void core::advance_high_watermark_to(int64_t hw) {
  if (hw > high_watermark_) {
    high_watermark_ = hw;
    out_.high_watermark_changed = true;
  }
}

void core::send_fetch_snapshot(int64_t now_ms) {
  (void)now_ms;
  if (!download_ || leader_id_ < 0) return;
  for (auto& [_, f] : in_flight_)
    if (f.what == in_flight::kind::fetch_snapshot && f.epoch == epoch_) return;
  fetch_snapshot_request req;
  req.replica_id = config_.node_id;
  req.current_leader_epoch = epoch_;
  req.snapshot_id = download_->id;
  req.position = download_->position;
  req.max_bytes = config_.snapshot_chunk_bytes;
  send(leader_id_, req, in_flight::kind::fetch_snapshot);
}

void core::on_fetch_snapshot_response(int32_t from, const fetch_snapshot_response& r, int64_t now_ms) {
  if (observe_epoch(r.leader_epoch, r.leader_id, now_ms)) return;
  if (!download_ || role_ != role::follower || from != leader_id_ || r.snapshot_id != download_->id) return;
  if (r.error == error_code::snapshot_not_found) {
    // The leader has a newer one: ask again.
    download_.reset();
    send_fetch(now_ms);
    return;
  }
  if (r.error != error_code::none) {
    retry_at_ms_ = std::min(retry_at_ms_, now_ms + config_.retry_backoff_ms);
    return;
  }
  if (r.position != download_->position) return;
  fetch_deadline_ms_ = now_ms + config_.fetch_timeout_ms;
  size_t n = r.chunk ? r.chunk->size() : 0;
  if (n > 0) {
    log_op op{log_op::kind::write_snapshot_chunk};
    op.snapshot = download_->id;
    op.offset = download_->position;
    op.data = r.chunk;
    out_.log.push_back(std::move(op));
    download_->position += static_cast<int64_t>(n);
  }
  if (download_->position < r.snapshot_size) {
    if (n == 0) {
      retry_at_ms_ = std::min(retry_at_ms_, now_ms + config_.retry_backoff_ms);
      return;
    }
    send_fetch_snapshot(now_ms);
    return;
  }
  auto id = download_->id;
  download_.reset();
  log_op op{log_op::kind::install_snapshot};
  op.snapshot = id;
  out_.log.push_back(std::move(op));
  snapshot_ = id;
  log_start_ = log_end_ = id.offset;
  epochs_.clear();
  epochs_.push_back({id.epoch, id.offset > 0 ? id.offset - 1 : 0});
  advance_high_watermark_to(id.offset);
  send_fetch(now_ms);
}

// ---- DescribeQuorum

quorum_description core::describe(int64_t now_ms) const {
  (void)now_ms;
  quorum_description d;
  d.leader_id = leader_id_;
  d.leader_epoch = epoch_;
  d.high_watermark = high_watermark_;
  for (int32_t v : config_.voters) {
    replica_progress p{v};
    if (role_ == role::leader) {
      auto it = voters_progress_.find(v);
      if (it != voters_progress_.end()) {
        p.log_end_offset = v == config_.node_id ? log_end_ : it->second.log_end_offset;
        p.last_fetch_ms = it->second.last_fetch_ms;
        p.last_caught_up_ms = v == config_.node_id ? now_ms : it->second.last_caught_up_ms;
      }
    }
    d.voters.push_back(p);
  }
  if (role_ == role::leader)
    for (auto& [id, prog] : observers_progress_)
      d.observers.push_back({id, prog.log_end_offset, prog.last_fetch_ms, prog.last_caught_up_ms});
  return d;
}

}  // namespace gregor::raft
