#include "client/producer.h"

#include <algorithm>
#include <limits>
#include <set>

#include <fmt/format.h>

#include "client/props.h"

namespace gregor::client {

namespace pr = protocol;

int32_t murmur2(bytes_view data) {
  const uint32_t length = static_cast<uint32_t>(data.size());
  const uint32_t seed = 0x9747b28c;
  const uint32_t m = 0x5bd1e995;
  const int r = 24;
  uint32_t h = seed ^ length;
  const uint32_t length4 = length / 4;
  for (uint32_t i = 0; i < length4; i++) {
    const uint32_t i4 = i * 4;
    uint32_t k = static_cast<uint32_t>(data[i4 + 0]) | (static_cast<uint32_t>(data[i4 + 1]) << 8) |
                 (static_cast<uint32_t>(data[i4 + 2]) << 16) | (static_cast<uint32_t>(data[i4 + 3]) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  const uint32_t tail = length & ~3u;
  switch (length % 4) {
    case 3: h ^= static_cast<uint32_t>(data[tail + 2]) << 16; [[fallthrough]];
    case 2: h ^= static_cast<uint32_t>(data[tail + 1]) << 8; [[fallthrough]];
    case 1:
      h ^= static_cast<uint32_t>(data[tail]);
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<int32_t>(h);
}

producer_record producer_record::of(std::string topic, std::optional<std::string_view> key,
                                    std::optional<std::string_view> value) {
  producer_record r;
  r.topic = std::move(topic);
  if (key) r.key = bytes(key->begin(), key->end());
  if (value) r.value = bytes(value->begin(), value->end());
  return r;
}

std::string record_metadata::describe_error() const {
  if (error_code == -1 && !error_message.empty()) return error_message;
  std::string s = client::describe_error(error_code);
  if (!error_message.empty()) s += ": " + error_message;
  return s;
}

result<void> producer_config::set(const std::string& key, const std::string& value) {
  if (auto r = set_common(*this, key, value); r.ok() || r.err().message != "unknown") return r;
  if (key == "acks") {
    if (value == "all" || value == "-1") acks = -1;
    else if (value == "0") acks = 0;
    else if (value == "1") acks = 1;
    else return error{fmt::format("bad acks '{}': expected 0, 1, all or -1", value)};
    return ok();
  }
  if (key == "linger.ms") return parse_int(key, value, linger_ms, 0);
  if (key == "batch.size") return parse_int(key, value, batch_size, 1);
  if (key == "retries") return parse_int(key, value, retries, 0);
  if (key == "delivery.timeout.ms") return parse_int(key, value, delivery_timeout_ms, 1);
  if (key == "max.in.flight.requests.per.connection") return parse_int(key, value, max_in_flight_requests_per_connection, 1);
  if (key == "max.block.ms") return parse_int(key, value, max_block_ms, 0);
  if (key == "max.request.size") return parse_int(key, value, max_request_size, 1);
  if (key == "buffer.memory") return parse_int(key, value, buffer_memory, 1);
  if (key == "compression.level") return parse_int(key, value, compression_level, -1000);
  if (key == "allow.auto.create.topics") return parse_bool(key, value, allow_auto_create_topics);
  if (key == "compression.type" || key == "compression.codec") {
    if (value == "none") compression = pr::compression_type::none;
    else if (value == "gzip") compression = pr::compression_type::gzip;
    else if (value == "snappy") compression = pr::compression_type::snappy;
    else if (value == "lz4") compression = pr::compression_type::lz4;
    else if (value == "zstd") compression = pr::compression_type::zstd;
    else return error{fmt::format("bad compression.type '{}': expected none, gzip, snappy, lz4 or zstd", value)};
    return ok();
  }
  if (key == "transactional.id") {
    if (value.empty()) transactional_id.reset();
    else transactional_id = value;
    return ok();
  }
  if (key == "transaction.timeout.ms") return parse_int(key, value, transaction_timeout_ms, 1);
  if (key == "enable.idempotence") {
    bool v = false;
    if (auto r = parse_bool(key, value, v); !r) return r;
    enable_idempotence = v;
    return ok();
  }
  // Accepted for compatibility, without effect here.
  if (key == "partitioner.class" || key == "key.serializer" ||
      key == "value.serializer" || key == "send.buffer.bytes" || key == "receive.buffer.bytes")
    return ok();
  return error{fmt::format("unknown producer property '{}'", key)};
}

namespace {

// What stands in the way of idempotence, or "".
std::string idempotence_conflict(const producer_config& c) {
  if (c.acks != -1)
    return fmt::format("acks must be all (-1) for an idempotent producer, not {}: with fewer acknowledgements a "
                       "retry can no longer be told from a lost write",
                       c.acks);
  if (c.retries <= 0) return "retries must be above 0 for an idempotent producer";
  if (c.max_in_flight_requests_per_connection > 5)
    return fmt::format("max.in.flight.requests.per.connection must be at most 5 for an idempotent producer, not {} "
                       "(brokers remember a producer's last 5 batches)",
                       c.max_in_flight_requests_per_connection);
  return {};
}

}  // namespace

result<void> producer_config::validate() const {
  if (transactional_id) {
    // Kafka's ProducerConfig: a transactional producer is an idempotent one.
    if (enable_idempotence == false)
      return error{fmt::format("transactional.id '{}' needs an idempotent producer, but enable.idempotence=false: "
                               "remove enable.idempotence or set it to true",
                               *transactional_id)};
    if (auto why = idempotence_conflict(*this); !why.empty())
      return error{fmt::format("transactional.id '{}' needs an idempotent producer: {}", *transactional_id, why)};
  }
  if (enable_idempotence.value_or(false))
    if (auto why = idempotence_conflict(*this); !why.empty())
      return error{fmt::format("enable.idempotence=true conflicts with the other settings: {}; set "
                               "enable.idempotence=false to produce without idempotence",
                               why)};
  return ok();
}

bool producer_config::idempotence() const {
  if (transactional_id) return idempotence_conflict(*this).empty();
  if (enable_idempotence) return *enable_idempotence && idempotence_conflict(*this).empty();
  return idempotence_conflict(*this).empty();
}

// ---- accumulator ------------------------------------------------------------

struct producer::pending {
  std::promise<record_metadata> promise;
  delivery_callback callback;
  int64_t timestamp = 0;
  size_t size = 0;
};

struct producer::batch {
  topic_partition tp;
  pr::batch_builder builder;
  std::vector<pending> records;
  bytes built;          // set when the batch is drained for the first time
  size_t estimated = pr::batch_header_size;
  int64_t created_ms = 0;
  int64_t retry_at_ms = 0;
  int attempts = 0;
  batch_sequence seq;  // idempotence: id, epoch and sequence once drained
  explicit batch(pr::batch_builder_options o) : builder(o) {}
};

namespace {

bool retriable(int16_t code) {
  using E = pr::error_code;
  switch (static_cast<E>(code)) {
    case E::corrupt_message:
    case E::unknown_topic_or_partition:
    case E::leader_not_available:
    case E::not_leader_or_follower:
    case E::request_timed_out:
    case E::network_exception:
    case E::not_enough_replicas:
    case E::not_enough_replicas_after_append:
    case E::coordinator_load_in_progress:
    case E::coordinator_not_available:
    case E::not_coordinator:
      return true;
    default:
      return code == 56 /* KAFKA_STORAGE_ERROR */ || code == 74 /* FENCED_LEADER_EPOCH */ ||
             code == 75 /* UNKNOWN_LEADER_EPOCH */ || code == 89 /* THROTTLING_QUOTA_EXCEEDED */;
  }
}

bool metadata_error(int16_t code) {
  using E = pr::error_code;
  return code == pr::code(E::unknown_topic_or_partition) || code == pr::code(E::leader_not_available) ||
         code == pr::code(E::not_leader_or_follower) || code == 74 || code == 75 ||
         code == pr::code(E::network_exception);
}

// Writes the producer id, epoch and base sequence into a built batch (and
// its CRC) unless it already carries them: a retry stays byte for byte what
// was sent, until an epoch bump rewrites its sequence.
void stamp_producer_state(bytes& built, const batch_sequence& s) {
  namespace f = pr::batch_field;
  uint8_t* p = built.data();
  if (load_be<int64_t>(p + f::producer_id) == s.id.producer_id && load_be<int16_t>(p + f::producer_epoch) == s.id.epoch &&
      load_be<int32_t>(p + f::base_sequence) == s.base_sequence)
    return;
  store_be<int64_t>(p + f::producer_id, s.id.producer_id);
  store_be<int16_t>(p + f::producer_epoch, s.id.epoch);
  store_be<int32_t>(p + f::base_sequence, s.base_sequence);
  pr::update_crc(std::span<uint8_t>(built.data(), built.size()));
}

bool init_producer_id_retriable(int16_t code) {
  using E = pr::error_code;
  return code == pr::code(E::coordinator_load_in_progress) || code == pr::code(E::coordinator_not_available) ||
         code == pr::code(E::not_coordinator) || code == pr::code(E::network_exception) ||
         code == pr::code(E::request_timed_out) || code == 56 /* KAFKA_STORAGE_ERROR */;
}

// Why a fenced producer stops, in words an operator can act on.
std::string fenced_message(const producer_id_and_epoch& id, int16_t code) {
  return fmt::format("producer id {} epoch {} was fenced ({}): another producer with the same transactional.id (or a "
                     "transaction timeout) has moved to a newer epoch; close this producer",
                     id.producer_id, id.epoch, describe_error(code));
}

size_t record_size_estimate(const producer_record& r) {
  size_t n = 24 + (r.key ? r.key->size() : 0) + (r.value ? r.value->size() : 0);
  for (auto& h : r.headers) n += 8 + h.key.size() + (h.value ? h.value->size() : 0);
  return n;
}

}  // namespace

producer::producer(producer_config config) : config_(config), cluster_(config) {
  if (auto v = config_.validate(); !v) {
    fatal_error_ = v.err().message;
    status_.note = fatal_error_;
  } else {
    idempotent_ = config_.idempotence();
    status_.enabled = idempotent_;
    if (!idempotent_)
      status_.note = config_.enable_idempotence.value_or(true) ? "off: " + idempotence_conflict(config_)
                                                               : "off: enable.idempotence=false";
  }
  sender_ = sys::start_thread([this] { run_sender(); });
}

producer::~producer() { close(-1); }

result<std::shared_ptr<const topic_info>> producer::wait_for_topic(const std::string& topic, int64_t deadline) {
  std::string last;
  for (;;) {
    auto md = cluster_.metadata();
    if (auto* t = md->topic(topic); t && t->error_code == 0 && !t->partitions.empty())
      return std::shared_ptr<const topic_info>(md, t);
    auto r = cluster_.refresh(std::vector<std::string>{topic}, config_.allow_auto_create_topics);
    if (r) {
      if (auto* t = r.value()->topic(topic); t && t->error_code == 0 && !t->partitions.empty())
        return std::shared_ptr<const topic_info>(r.value(), t);
      auto* t = r.value()->topic(topic);
      last = t ? describe_error(t->error_code) : "topic missing from metadata";
      if (t && t->error_code != pr::code(pr::error_code::unknown_topic_or_partition) &&
          t->error_code != pr::code(pr::error_code::leader_not_available) && t->error_code != 0)
        return error{fmt::format("topic '{}': {}", topic, last)};
    } else {
      last = r.err().message;
    }
    if (sys::monotonic_ms() >= deadline)
      return error{fmt::format("topic '{}' not available after {} ms (max.block.ms): {}", topic, config_.max_block_ms,
                               last)};
    sys::sleep_ms(std::min<int64_t>(config_.retry_backoff_ms, std::max<int64_t>(1, deadline - sys::monotonic_ms())));
  }
}

result<std::vector<partition_info>> producer::partitions_for(const std::string& topic) {
  auto t = wait_for_topic(topic, sys::monotonic_ms() + config_.max_block_ms);
  if (!t) return t.err();
  return t.value()->partitions;
}

result<int32_t> producer::choose_partition(const producer_record& r, const topic_info& t) {
  const int32_t n = static_cast<int32_t>(t.partitions.size());
  if (r.partition) {
    if (*r.partition < 0 || *r.partition >= n)
      return error{fmt::format("partition {} of topic '{}' does not exist ({} partitions)", *r.partition, r.topic, n)};
    return *r.partition;
  }
  if (r.key) return partition_for_key(*r.key, n);
  return -1;  // sticky: chosen under the lock
}

std::future<record_metadata> producer::send(producer_record record, delivery_callback callback) {
  pending p;
  p.callback = std::move(callback);
  auto future = p.promise.get_future();
  auto fail_now = [&](int16_t code, std::string message) {
    record_metadata md;
    md.topic = record.topic;
    md.partition = record.partition.value_or(-1);
    md.error_code = code;
    md.error_message = std::move(message);
    if (p.callback) p.callback(md);
    p.promise.set_value(md);
    return std::move(future);
  };
  const int64_t deadline = sys::monotonic_ms() + config_.max_block_ms;
  {
    std::lock_guard g(mu_);
    if (closing_) return fail_now(-1, "producer is closed");
    if (!fatal_error_.empty()) return fail_now(-1, fatal_error_);
    if (transactional())
      if (auto r = txn_.check_send(); !r) return fail_now(-1, r.err().message);
  }
  const size_t size = record_size_estimate(record);
  if (size + pr::batch_header_size > static_cast<size_t>(config_.max_request_size))
    return fail_now(pr::code(pr::error_code::message_too_large),
                    fmt::format("record of {} bytes exceeds max.request.size {}", size, config_.max_request_size));
  auto topic = wait_for_topic(record.topic, deadline);
  if (!topic) return fail_now(-1, topic.err().message);
  auto part = choose_partition(record, *topic.value());
  if (!part) return fail_now(-1, part.err().message);
  p.timestamp = record.timestamp.value_or(sys::wall_clock_ms());
  p.size = size;

  std::unique_lock lock(mu_);
  // Back-pressure: wait for room in buffer.memory.
  while (queued_bytes_ + static_cast<int64_t>(size) > config_.buffer_memory && incomplete_ > 0 && !closing_) {
    int64_t left = deadline - sys::monotonic_ms();
    if (left <= 0) {
      lock.unlock();
      return fail_now(-1, fmt::format("buffer.memory full for {} ms (max.block.ms)", config_.max_block_ms));
    }
    done_cv_.wait_for(lock, std::chrono::milliseconds(left));
  }
  if (closing_) {
    lock.unlock();
    return fail_now(-1, "producer is closed");
  }
  const int32_t n = static_cast<int32_t>(topic.value()->partitions.size());
  int32_t partition = part.value();
  auto full = [&](const std::deque<std::unique_ptr<batch>>& q) {
    return !q.empty() && !q.back()->records.empty() &&
           q.back()->estimated + size > static_cast<size_t>(config_.batch_size);
  };
  if (partition < 0) {
    auto it = sticky_.find(record.topic);
    if (it == sticky_.end() || it->second >= n) {
      it = sticky_.insert_or_assign(record.topic, static_cast<int32_t>(sys::random_below(static_cast<uint32_t>(n)))).first;
    } else if (full(queues_[{record.topic, it->second}])) {
      // The sticky batch is full: move to another partition for the next batch.
      int32_t next = static_cast<int32_t>(sys::random_below(static_cast<uint32_t>(n)));
      if (n > 1 && next == it->second) next = (next + 1) % n;
      it->second = next;
    }
    partition = it->second;
  }
  topic_partition tp{record.topic, partition};
  auto& q = queues_[tp];
  if (q.empty() || full(q) || !q.back()->built.empty()) {
    pr::batch_builder_options o;
    o.compression = config_.compression;
    o.compression_level = config_.compression_level;
    o.transactional = transactional();
    auto b = std::make_unique<batch>(o);
    b->tp = tp;
    b->created_ms = sys::monotonic_ms();
    q.push_back(std::move(b));
  }
  auto& b = *q.back();
  std::vector<pr::record_header_view> hv;
  hv.reserve(record.headers.size());
  for (auto& h : record.headers)
    hv.push_back({h.key, h.value ? std::optional<bytes_view>(*h.value) : std::nullopt});
  b.builder.add(p.timestamp, record.key ? std::optional<bytes_view>(*record.key) : std::nullopt,
                record.value ? std::optional<bytes_view>(*record.value) : std::nullopt, hv);
  b.estimated += size;
  b.records.push_back(std::move(p));
  ++incomplete_;
  queued_bytes_ += static_cast<int64_t>(size);
  if (q.size() > 1 || b.estimated >= static_cast<size_t>(config_.batch_size) || config_.linger_ms == 0)
    sender_cv_.notify_one();
  return future;
}

void producer::fail_batch(batch& b, int16_t code, const std::string& message, bool adjust_sequences) {
  if (b.seq.has_sequence()) idem_.on_failed(b.tp, b.seq, code, adjust_sequences);
  // In a transaction a lost record loses the transaction: it must be aborted
  // (Kafka's TransactionManager.handleFailedBatch). Set before the records
  // complete, so that a commit waiting in flush() sees it.
  if (transactional())
    fail_transaction(code, fmt::format("a record for {}-{} could not be written: {}", b.tp.topic, b.tp.partition,
                                       code == -1 ? message : describe_error(code) + (message.empty() ? "" : ": " + message)));
  for (auto& p : b.records) {
    record_metadata md;
    md.topic = b.tp.topic;
    md.partition = b.tp.partition;
    md.timestamp = p.timestamp;
    md.error_code = code;
    md.error_message = message;
    if (p.callback) p.callback(md);
    p.promise.set_value(md);
  }
  std::lock_guard g(mu_);
  if (transactional() && idem_.bump_required()) epoch_bump_needed_ = true;
  incomplete_ -= static_cast<int64_t>(b.records.size());
  for (auto& p : b.records) queued_bytes_ -= static_cast<int64_t>(p.size);
  done_cv_.notify_all();
}

void producer::complete_batch(batch& b, int64_t base_offset, int64_t log_append_time) {
  if (b.seq.has_sequence()) idem_.on_acknowledged(b.tp, b.seq, base_offset);
  int64_t i = 0;
  for (auto& p : b.records) {
    record_metadata md;
    md.topic = b.tp.topic;
    md.partition = b.tp.partition;
    md.offset = base_offset >= 0 ? base_offset + i : -1;
    md.timestamp = log_append_time >= 0 ? log_append_time : p.timestamp;
    if (p.callback) p.callback(md);
    p.promise.set_value(md);
    ++i;
  }
  std::lock_guard g(mu_);
  incomplete_ -= static_cast<int64_t>(b.records.size());
  for (auto& p : b.records) queued_bytes_ -= static_cast<int64_t>(p.size);
  done_cv_.notify_all();
}

// ---- sender -------------------------------------------------------------------

idempotence_status producer::idempotence() const {
  std::lock_guard g(mu_);
  return status_;
}

void producer::set_fatal(std::string message) {
  std::lock_guard g(mu_);
  if (fatal_error_.empty()) fatal_error_ = std::move(message);
  status_.note = fatal_error_;
  if (transactional()) txn_.set_fatal(fatal_error_);
  sender_cv_.notify_one();
}

// One InitProducerId attempt (Kafka's InitProducerIdHandler for a producer
// without a transactional id), at the highest version both sides speak: the
// first id, or a new one for an epoch bump.
// Retriable failures try again after retry.backoff.ms; meanwhile the queued
// batches wait (and expire after delivery.timeout.ms).
void producer::init_producer_id() {
  next_init_ms_ = sys::monotonic_ms() + config_.retry_backoff_ms;
  auto c = cluster_.any();
  if (!c) {
    init_error_ = c.err().message;
    return;
  }
  const int16_t v = (*c)->version_for<pr::init_producer_id_request>();
  if (v < 0) {
    const std::string why = fmt::format("broker {}:{} does not support InitProducerId (api key 22)", (*c)->host(),
                                        (*c)->port());
    if (config_.enable_idempotence.value_or(false)) {
      set_fatal(fmt::format("enable.idempotence=true, but {}: set enable.idempotence=false to produce to it", why));
    } else {
      std::lock_guard g(mu_);
      idempotent_ = false;
      status_.enabled = false;
      status_.note = "off: " + why;
    }
    return;
  }
  pr::init_producer_id_request req;
  req.transactional_id = std::nullopt;
  req.transaction_timeout_ms = std::numeric_limits<int32_t>::max();
  // No current id and epoch (v3+ fields left -1), also for a bump: without a
  // transactional id the broker hands out a fresh id anyway, and a broker may
  // refuse an id it does not map (librdkafka's mock answers
  // INVALID_PRODUCER_ID_MAPPING); Kafka's Java client never sends them for an
  // idempotent producer either.
  auto resp = (*c)->call(req, v, config_.request_timeout_ms);
  if (!resp) {  // transport failure: retried
    init_error_ = resp.err().message;
    return;
  }
  if (resp->error_code == 0 && resp->producer_id >= 0) {
    idem_.set_producer_id({resp->producer_id, resp->producer_epoch});
    std::lock_guard g(mu_);
    status_.producer_id = resp->producer_id;
    status_.producer_epoch = resp->producer_epoch;
    return;
  }
  init_error_ = describe_error(resp->error_code);
  if (init_producer_id_retriable(resp->error_code)) return;
  set_fatal(fmt::format("InitProducerId failed: {}", describe_error(resp->error_code)));
}

void producer::run_sender() {
  using batch_ptr = std::unique_ptr<batch>;
  struct request {
    int32_t node = -1;
    std::vector<batch_ptr> batches;
    size_t bytes = 0;
    int32_t correlation_id = -1;
    int16_t version = -1;
    bool sent = false;
    std::string send_error;
  };
  int64_t last_metadata_ms = sys::monotonic_ms();
  for (;;) {
    // Idempotence: settle unresolved partitions, and get a producer id (or a
    // new one, for an epoch bump) before anything is drained.
    bool idempotent = false;
    {
      std::lock_guard g(mu_);
      idempotent = idempotent_ && fatal_error_.empty();
      // A transactional producer's id comes from init_transactions (or the
      // re-initialisation after an abort), on the application's thread.
      if (pending_producer_id_) {
        idem_.set_producer_id(*pending_producer_id_);
        pending_producer_id_.reset();
      }
      // A batch needs an epoch bump in a transaction: the transaction cannot
      // go on under this epoch. The abort bumps it (InitProducerId again).
      if (transactional() && idem_.bump_required()) {
        epoch_bump_needed_ = true;
        txn_.set_abortable("a batch's sequence could not be recovered under this producer epoch");
      }
    }
    if (idempotent) idem_.maybe_resolve_sequences();
    if (idempotent && !transactional()) {
      if (idem_.needs_producer_id() && sys::monotonic_ms() >= next_init_ms_ && !force_close_) {
        bool queued = false;
        {
          std::lock_guard g(mu_);
          queued = !queues_.empty();
        }
        if (queued) init_producer_id();
        std::lock_guard g(mu_);
        idempotent = idempotent_ && fatal_error_.empty();
      }
    }
    const bool may_send = !idempotent || !idem_.needs_producer_id();
    std::vector<batch_ptr> expired;
    std::vector<batch_ptr> fatal;
    std::vector<request> requests;
    std::vector<batch_ptr> no_leader;
    std::vector<batch_ptr> txn_dropped;  // an aborted or failed transaction's unsent batches
    std::string txn_dropped_why;
    std::vector<topic_partition> to_add;  // not in the transaction yet: AddPartitionsToTxn first
    bool refresh = false;
    std::set<std::string> topics;
    {
      std::unique_lock lock(mu_);
      const int64_t now = sys::monotonic_ms();
      if (force_close_ || !fatal_error_.empty()) {
        for (auto& [tp, q] : queues_)
          for (auto& b : q) (force_close_ ? expired : fatal).push_back(std::move(b));
        queues_.clear();
      }
      // A transaction being aborted, or failed, sends nothing more: the
      // batches never drained fail (Kafka's abortUndrainedBatches); so do
      // retries that cannot go under this epoch any more.
      if (transactional() && (txn_.failed() || txn_.state() == txn_state::aborting)) {
        txn_dropped_why = txn_.state() == txn_state::aborting
                              ? "the transaction was aborted before the record was sent"
                              : "not sent: the transaction failed and must be aborted: " + txn_.last_error();
        for (auto it = queues_.begin(); it != queues_.end();) {
          auto& q = it->second;
          for (auto b = q.begin(); b != q.end();) {
            if (!(*b)->seq.has_sequence() || idem_.needs_producer_id()) {
              txn_dropped.push_back(std::move(*b));
              b = q.erase(b);
            } else {
              ++b;
            }
          }
          if (q.empty()) it = queues_.erase(it);
          else ++it;
        }
      }
      if (closing_ && incomplete_ == 0) return;
      int64_t next_wake = now + 100;
      if (!may_send) next_wake = std::min(next_wake, std::max(now + 1, next_init_ms_));
      auto md = cluster_.metadata();
      std::map<int32_t, std::vector<request>> by_node;
      for (auto it = queues_.begin(); it != queues_.end();) {
        auto& [tp, q] = *it;
        topics.insert(tp.topic);
        // Expire batches past delivery.timeout.ms.
        while (!q.empty() && now - q.front()->created_ms >= config_.delivery_timeout_ms) {
          expired.push_back(std::move(q.front()));
          q.pop_front();
        }
        if (q.empty()) {
          it = queues_.erase(it);
          continue;
        }
        int32_t leader = -1;
        if (auto* t = md->topic(tp.topic))
          for (auto& p : t->partitions)
            if (p.partition == tp.partition) leader = p.leader;
        if (leader < 0) {
          refresh = true;
          ++it;
          continue;
        }
        if (!may_send) {
          ++it;
          continue;
        }
        // A transaction's first batch to a partition waits for the partition
        // to be in the transaction.
        if (transactional() && !txn_.in_transaction(tp) && !q.front()->seq.has_sequence()) {
          if (txn_.may_add_partitions()) to_add.push_back(tp);
          ++it;
          continue;
        }
        auto& reqs = by_node[leader];
        for (size_t drained = 0; !q.empty() && drained < static_cast<size_t>(config_.max_in_flight_requests_per_connection);) {
          auto& b = *q.front();
          const bool ready = q.size() > 1 || b.estimated >= static_cast<size_t>(config_.batch_size) ||
                             now - b.created_ms >= config_.linger_ms || flushing_ > 0 || closing_ || !b.built.empty();
          if (!ready) {
            next_wake = std::min(next_wake, b.created_ms + config_.linger_ms);
            break;
          }
          if (b.retry_at_ms > now) {
            next_wake = std::min(next_wake, b.retry_at_ms);
            break;
          }
          // Idempotence keeps each partition in sequence order: a retry goes
          // alone, first; new batches wait for an older id's batches.
          if (idempotent && !idem_.may_drain(tp, b.seq)) break;
          if (b.built.empty()) b.built = b.builder.build();
          // The drained-th request to this node takes this batch (one batch
          // per partition per request).
          while (reqs.size() <= drained) reqs.push_back(request{leader, {}, 0, -1, -1, false, {}});
          auto& r = reqs[drained];
          if (!r.batches.empty() && r.bytes + b.built.size() > static_cast<size_t>(config_.max_request_size)) break;
          r.bytes += b.built.size();
          if (idempotent && !b.seq.has_sequence()) {
            b.seq.record_count = static_cast<int32_t>(b.records.size());
            idem_.assign(tp, b.seq);
          }
          r.batches.push_back(std::move(q.front()));
          q.pop_front();
          ++drained;
        }
        if (q.empty()) it = queues_.erase(it);
        else ++it;
      }
      for (auto& [node, reqs] : by_node)
        for (auto& r : reqs)
          if (!r.batches.empty()) requests.push_back(std::move(r));
      if (metadata_stale_ || now - last_metadata_ms > config_.metadata_max_age_ms) refresh = true;
      metadata_stale_ = false;
      if (!to_add.empty() && now < next_add_partitions_ms_) {
        next_wake = std::min(next_wake, next_add_partitions_ms_);
        to_add.clear();
      }
      if (requests.empty() && expired.empty() && fatal.empty() && !refresh && txn_dropped.empty() && to_add.empty()) {
        sender_cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(1, next_wake - now)));
        continue;
      }
    }
    for (auto& b : txn_dropped) fail_batch(*b, -1, txn_dropped_why);
    // Outside the lock: a round trip to the transaction coordinator. Their
    // batches go on the next pass.
    if (!to_add.empty()) add_partitions_to_txn(to_add);
    for (auto& b : expired) {
      // Sent at least once: whether the broker has it is unknown.
      if (b->seq.has_sequence() && !force_close_) idem_.on_expired_in_retry(b->tp, b->seq);
      std::string why = force_close_ ? "producer closed before the record was sent"
                                     : fmt::format("expired after {} ms (delivery.timeout.ms)", config_.delivery_timeout_ms);
      if (!force_close_ && idempotent && !b->seq.has_sequence() && idem_.needs_producer_id())
        why += fmt::format(" waiting for a producer id (InitProducerId: {})",
                           init_error_.empty() ? "no answer yet" : init_error_);
      fail_batch(*b, pr::code(pr::error_code::request_timed_out), why);
    }
    if (!fatal.empty()) {
      std::string message;
      {
        std::lock_guard g(mu_);
        message = fatal_error_;
      }
      for (auto& b : fatal) fail_batch(*b, -1, message);
    }
    if (refresh && !topics.empty()) {
      (void)cluster_.refresh(std::vector<std::string>(topics.begin(), topics.end()), config_.allow_auto_create_topics);
      last_metadata_ms = sys::monotonic_ms();
      if (requests.empty()) {
        std::unique_lock lock(mu_);
        sender_cv_.wait_for(lock, std::chrono::milliseconds(config_.retry_backoff_ms));
        continue;
      }
    }
    // Send every request, then read the responses (pipelined per connection).
    std::map<int32_t, std::vector<request*>> per_node;
    for (auto& r : requests) per_node[r.node].push_back(&r);
    std::vector<batch_ptr> retry;
    auto handle_failure = [&](batch_ptr b, int16_t code, const std::string& message, int64_t log_start_offset = -1) {
      const int64_t now = sys::monotonic_ms();
      const bool retries_left = b->attempts <= config_.retries;
      const bool may_retry = retries_left && now - b->created_ms < config_.delivery_timeout_ms && !force_close_;
      bool again = false;
      if (idempotent && b->seq.has_sequence()) {
        // PRODUCER_FENCED is fatal, as in Kafka's Java client; in a
        // transaction so is INVALID_PRODUCER_EPOCH (a newer epoch exists).
        if (code == pr::code(pr::error_code::producer_fenced) || (transactional() && is_fenced(code)))
          set_fatal(fenced_message(b->seq.id, code));
        else
          again = may_retry && idem_.can_retry(b->tp, b->seq, code, log_start_offset, retriable(code));
      } else {
        again = may_retry && retriable(code);
      }
      if (again) {
        b->retry_at_ms = now + config_.retry_backoff_ms;
        retry.push_back(std::move(b));
      } else {
        fail_batch(*b, code, message, retries_left);
      }
      if (metadata_error(code)) {
        std::lock_guard g(mu_);
        metadata_stale_ = true;
      }
    };
    for (auto& [node, reqs] : per_node) {
      auto conn = cluster_.node(node);
      if (!conn) {
        for (auto* r : reqs)
          for (auto& b : r->batches) {
            ++b->attempts;
            handle_failure(std::move(b), pr::code(pr::error_code::network_exception), conn.err().message);
          }
        continue;
      }
      const int16_t version = (*conn)->version_for<pr::produce_request>();
      for (auto* r : reqs) {
        pr::produce_request req;
        req.transactional_id = config_.transactional_id;
        req.acks = config_.acks;
        req.timeout_ms = static_cast<int32_t>(config_.request_timeout_ms);
        std::map<std::string, size_t> topic_index;
        for (auto& b : r->batches) {
          ++b->attempts;
          if (b->seq.has_sequence()) stamp_producer_state(b->built, b->seq);
          auto [ti, inserted] = topic_index.emplace(b->tp.topic, req.topic_data.size());
          if (inserted) req.topic_data.push_back({b->tp.topic, {}, {}});
          pr::produce_request::partition_produce_data pd;
          pd.index = b->tp.partition;
          pd.records = pr::records::borrow(b->built);
          req.topic_data[ti->second].partition_data.push_back(std::move(pd));
        }
        if (version < 3) {
          r->send_error = (*conn)->unsupported(pr::produce_request::api_key).message;
          continue;
        }
        r->version = version;
        auto corr = (*conn)->send(req, version, config_.request_timeout_ms);
        if (!corr) {
          r->send_error = corr.err().message;
          continue;
        }
        r->correlation_id = corr.value();
        r->sent = true;
      }
      for (auto* r : reqs) {
        if (!r->sent) {
          for (auto& b : r->batches)
            handle_failure(std::move(b), pr::code(pr::error_code::network_exception), r->send_error);
          continue;
        }
        if (config_.acks == 0) {
          for (auto& b : r->batches) complete_batch(*b, -1, -1);
          continue;
        }
        auto resp = (*conn)->receive<pr::produce_response>(r->correlation_id, r->version,
                                                           config_.request_timeout_ms + 5000);
        if (!resp) {
          for (auto& b : r->batches)
            handle_failure(std::move(b), pr::code(pr::error_code::network_exception), resp.err().message);
          continue;
        }
        std::map<topic_partition, const pr::produce_response::partition_produce_response*> results;
        for (auto& t : resp->responses)
          for (auto& p : t.partition_responses) results[{t.name, p.index}] = &p;
        for (auto& b : r->batches) {
          auto it = results.find(b->tp);
          if (it == results.end()) {
            handle_failure(std::move(b), pr::code(pr::error_code::network_exception), "partition missing from response");
            continue;
          }
          auto& p = *it->second;
          if (p.error_code == 0) complete_batch(*b, p.base_offset, p.log_append_time_ms);
          // Already written, at an offset the broker no longer knows.
          else if (p.error_code == pr::code(pr::error_code::duplicate_sequence_number) && b->seq.has_sequence())
            complete_batch(*b, -1, p.log_append_time_ms);
          else handle_failure(std::move(b), p.error_code, p.error_message.value_or(""), p.log_start_offset);
        }
      }
    }
    if (!retry.empty()) {
      std::lock_guard g(mu_);
      // Back to the front of their queues, in their original order.
      for (auto it = retry.rbegin(); it != retry.rend(); ++it) {
        auto tp = (*it)->tp;
        queues_[tp].push_front(std::move(*it));
      }
    }
  }
}

bool producer::flush(int64_t timeout_ms) {
  std::unique_lock lock(mu_);
  ++flushing_;
  sender_cv_.notify_one();
  auto done = [&] { return incomplete_ == 0; };
  bool ok = true;
  if (timeout_ms < 0) done_cv_.wait(lock, done);
  else ok = done_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), done);
  --flushing_;
  return ok;
}

void producer::close(int64_t timeout_ms) {
  {
    std::unique_lock lock(mu_);
    if (!sender_.joinable()) return;
    closing_ = true;
    sender_cv_.notify_one();
    auto done = [&] { return incomplete_ == 0; };
    if (timeout_ms < 0) done_cv_.wait(lock, done);
    else if (!done_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), done)) force_close_ = true;
    sender_cv_.notify_one();
  }
  sender_.join();
}

// ---- transactions ---------------------------------------------------------------

txn_state producer::transaction_state() const {
  std::lock_guard g(mu_);
  return txn_.state();
}

int64_t producer::transactions_committed() const {
  std::lock_guard g(mu_);
  return transactions_committed_;
}

int64_t producer::deadline_for(int64_t timeout_ms) const {
  return sys::monotonic_ms() + (timeout_ms < 0 ? config_.max_block_ms : timeout_ms);
}

void producer::fail_transaction(int16_t code, const std::string& message) {
  if (classify_txn_error(code) == txn_error_kind::fatal) {
    set_fatal(message);
    return;
  }
  std::lock_guard g(mu_);
  txn_.set_abortable(message);
  sender_cv_.notify_one();
}

namespace {

// Calls a coordinator (of the transactional id or of a group) until it
// answers with a code that is not retriable (returned to the caller, which
// decides), or the deadline passes. `code_of` reads a response's error code.
template <class Req, class CodeOf>
result<typename response_for<Req>::type> call_coordinator_until(cluster& c, const std::string& key, int8_t key_type,
                                                                const Req& req, int64_t deadline, int64_t backoff_ms,
                                                                const char* what, CodeOf code_of) {
  std::string last;
  for (;;) {
    int16_t code = -1;
    auto conn = c.coordinator(key, key_type);
    if (!conn) {
      last = conn.err().message;
    } else {
      const int64_t left = std::max<int64_t>(1, deadline - sys::monotonic_ms());
      auto resp = (*conn)->call(req, std::min(left, c.config().request_timeout_ms));
      if (!resp) {
        last = resp.err().message;
        c.forget_coordinator(key, key_type);
      } else {
        code = code_of(*resp);
        if (classify_txn_error(code) != txn_error_kind::retriable) return resp;
        last = describe_error(code);
        if (code == pr::code(pr::error_code::not_coordinator) ||
            code == pr::code(pr::error_code::coordinator_not_available))
          c.forget_coordinator(key, key_type);
      }
    }
    const int64_t now = sys::monotonic_ms();
    if (now >= deadline) return error{fmt::format("{} timed out: {}", what, last)};
    // A previous transaction still completing clears quickly: retry soon
    // (the Java client's 20 ms for CONCURRENT_TRANSACTIONS).
    int64_t wait = code == pr::code(pr::error_code::concurrent_transactions) ? std::min<int64_t>(backoff_ms, 20)
                                                                               : backoff_ms;
    sys::sleep_ms(std::max<int64_t>(1, std::min(wait, deadline - now)));
  }
}

}  // namespace

result<void> producer::init_transactional_producer_id(int64_t deadline) {
  pr::init_producer_id_request req;
  req.transactional_id = config_.transactional_id;
  req.transaction_timeout_ms = config_.transaction_timeout_ms;
  auto resp = call_coordinator_until(cluster_, *config_.transactional_id, cluster::coordinator_transaction, req,
                                     deadline, config_.retry_backoff_ms, "InitProducerId",
                                     [](const auto& r) { return r.error_code; });
  if (!resp) return error{fmt::format("transactional id '{}': {}", *config_.transactional_id, resp.err().message)};
  if (resp->error_code != 0) {
    std::string msg = fmt::format("InitProducerId for transactional id '{}' failed: {}", *config_.transactional_id,
                                  describe_error(resp->error_code));
    // Whatever the code (fenced, not authorised, a bad timeout), this
    // producer cannot go on with the transactional id.
    set_fatal(msg);
    return error{msg};
  }
  std::lock_guard g(mu_);
  pending_producer_id_ = producer_id_and_epoch{resp->producer_id, resp->producer_epoch};
  epoch_bump_needed_ = false;
  status_.producer_id = resp->producer_id;
  status_.producer_epoch = resp->producer_epoch;
  sender_cv_.notify_one();
  return ok();
}

result<void> producer::init_transactions(int64_t timeout_ms) {
  const int64_t deadline = deadline_for(timeout_ms);
  {
    std::lock_guard g(mu_);
    if (!transactional()) return error{"init_transactions needs a transactional.id"};
    if (!fatal_error_.empty()) return error{fatal_error_};
    if (auto r = txn_.begin_init(); !r) return r;
  }
  auto r = init_transactional_producer_id(deadline);
  std::lock_guard g(mu_);
  if (!r) {
    txn_.on_init_failed();  // a timeout may be retried with another call
    return r;
  }
  txn_.on_initialized();
  return ok();
}

result<void> producer::begin_transaction() {
  std::lock_guard g(mu_);
  if (!transactional()) return error{"begin_transaction needs a transactional.id"};
  return txn_.begin_transaction();
}

result<void> producer::end_transaction(bool commit, int64_t deadline) {
  pr::end_txn_request req;
  req.transactional_id = *config_.transactional_id;
  {
    std::lock_guard g(mu_);
    req.producer_id = status_.producer_id;
    req.producer_epoch = status_.producer_epoch;
  }
  req.committed = commit;
  const char* what = commit ? "EndTxn (commit)" : "EndTxn (abort)";
  auto resp = call_coordinator_until(cluster_, *config_.transactional_id, cluster::coordinator_transaction, req,
                                     deadline, config_.retry_backoff_ms, what,
                                     [](const auto& r) { return r.error_code; });
  std::string msg;
  int16_t code = -1;
  if (!resp) msg = fmt::format("{} of transactional id '{}': {}", what, *config_.transactional_id, resp.err().message);
  else if ((code = resp->error_code) != 0)
    msg = is_fenced(code) ? fenced_message({req.producer_id, req.producer_epoch}, code)
                          : fmt::format("{} of transactional id '{}' failed: {}", what, *config_.transactional_id,
                                        describe_error(code));
  if (!msg.empty()) {
    if (classify_txn_error(code) == txn_error_kind::fatal) set_fatal(msg);
    std::lock_guard g(mu_);
    txn_.on_end_failed(msg);
    return error{msg};
  }
  std::lock_guard g(mu_);
  txn_.on_completed();
  if (commit) ++transactions_committed_;
  return ok();
}

result<void> producer::commit_transaction(int64_t timeout_ms) {
  const int64_t deadline = deadline_for(timeout_ms);
  {
    std::lock_guard g(mu_);
    if (!transactional()) return error{"commit_transaction needs a transactional.id"};
    if (auto r = txn_.begin_commit(); !r) return r;
  }
  if (!flush(std::max<int64_t>(0, deadline - sys::monotonic_ms()))) {
    std::lock_guard g(mu_);
    std::string msg = "commit timed out waiting for the transaction's records to be acknowledged";
    txn_.set_abortable(msg);
    return error{msg};
  }
  {
    std::lock_guard g(mu_);
    if (txn_.failed())
      return error{fmt::format("cannot commit the transaction, it must be aborted: {}", txn_.last_error())};
    // Nothing was added to it: the coordinator never heard of it, and it
    // ends here (Kafka's TransactionManager does the same).
    if (!txn_.started()) {
      txn_.on_completed();
      ++transactions_committed_;
      return ok();
    }
  }
  return end_transaction(true, deadline);
}

result<void> producer::abort_transaction(int64_t timeout_ms) {
  const int64_t deadline = deadline_for(timeout_ms);
  {
    std::lock_guard g(mu_);
    if (!transactional()) return error{"abort_transaction needs a transactional.id"};
    if (!fatal_error_.empty()) return error{fatal_error_};
    if (auto r = txn_.begin_abort(); !r) return r;
    sender_cv_.notify_one();  // drops the batches not sent yet
  }
  // The batches in flight complete (or fail) first: an abort marker must not
  // overtake them.
  if (!flush(std::max<int64_t>(0, deadline - sys::monotonic_ms()))) {
    std::lock_guard g(mu_);
    std::string msg = "abort timed out waiting for the records in flight";
    txn_.on_end_failed(msg);
    return error{msg};
  }
  bool started = false, bump = false;
  {
    std::lock_guard g(mu_);
    started = txn_.started();
    bump = epoch_bump_needed_;
  }
  if (started)
    if (auto r = end_transaction(false, deadline); !r) return r;
  // A batch's fate was unknown under the old epoch: the next transaction
  // starts under a new one (InitProducerId again bumps it, KIP-360's way).
  if (bump)
    if (auto r = init_transactional_producer_id(deadline); !r) return r;
  std::lock_guard g(mu_);
  txn_.on_completed();
  return ok();
}

result<void> producer::send_offsets_to_transaction(const std::map<topic_partition, offset_and_metadata>& offsets,
                                                   const consumer_group_metadata& group, int64_t timeout_ms) {
  const int64_t deadline = deadline_for(timeout_ms);
  producer_id_and_epoch id;
  {
    std::lock_guard g(mu_);
    if (!transactional()) return error{"send_offsets_to_transaction needs a transactional.id"};
    if (!fatal_error_.empty()) return error{fatal_error_};
    if (auto r = txn_.check_send_offsets(); !r) return r;
    id = {status_.producer_id, status_.producer_epoch};
  }
  auto failed = [&](int16_t code, std::string msg) -> result<void> {
    if (is_fenced(code)) msg = fenced_message(id, code);
    fail_transaction(code, msg);
    return error{msg};
  };
  // The group's __consumer_offsets partition joins the transaction...
  pr::add_offsets_to_txn_request add;
  add.transactional_id = *config_.transactional_id;
  add.producer_id = id.producer_id;
  add.producer_epoch = id.epoch;
  add.group_id = group.group_id;
  auto added = call_coordinator_until(cluster_, *config_.transactional_id, cluster::coordinator_transaction, add,
                                      deadline, config_.retry_backoff_ms, "AddOffsetsToTxn",
                                      [](const auto& r) { return r.error_code; });
  if (!added) return failed(-1, fmt::format("transactional id '{}': {}", *config_.transactional_id, added.err().message));
  if (added->error_code != 0)
    return failed(added->error_code, fmt::format("AddOffsetsToTxn for group '{}' failed: {}", group.group_id,
                                                 describe_error(added->error_code)));
  {
    std::lock_guard g(mu_);
    txn_.on_offsets_added();
  }
  // ... and the offsets go to the group coordinator, pending until the
  // transaction's marker settles them.
  pr::txn_offset_commit_request commit;
  commit.transactional_id = *config_.transactional_id;
  commit.group_id = group.group_id;
  commit.producer_id = id.producer_id;
  commit.producer_epoch = id.epoch;
  commit.generation_id = group.generation_id;
  commit.member_id = group.member_id;
  commit.group_instance_id = group.group_instance_id;
  for (auto& [tp, o] : offsets) {
    if (commit.topics.empty() || commit.topics.back().name != tp.topic) commit.topics.push_back({tp.topic, {}});
    pr::txn_offset_commit_request::txn_offset_commit_request_partition p;
    p.partition_index = tp.partition;
    p.committed_offset = o.offset;
    p.committed_leader_epoch = o.leader_epoch;
    p.committed_metadata = o.metadata;
    commit.topics.back().partitions.push_back(std::move(p));
  }
  // The first retriable partition error stands for the request (they all
  // went to one coordinator); otherwise the first error.
  auto first_error = [](const pr::txn_offset_commit_response& r) -> int16_t {
    int16_t first = 0;
    for (auto& t : r.topics)
      for (auto& p : t.partitions) {
        if (classify_txn_error(p.error_code) == txn_error_kind::retriable) return p.error_code;
        if (first == 0) first = p.error_code;
      }
    return first;
  };
  auto resp = call_coordinator_until(cluster_, group.group_id, cluster::coordinator_group, commit, deadline,
                                     config_.retry_backoff_ms, "TxnOffsetCommit", first_error);
  if (!resp) return failed(-1, fmt::format("group '{}': {}", group.group_id, resp.err().message));
  if (int16_t code = first_error(*resp); code != 0)
    return failed(code, fmt::format("TxnOffsetCommit to group '{}' failed: {}", group.group_id, describe_error(code)));
  return ok();
}

void producer::add_partitions_to_txn(const std::vector<topic_partition>& tps) {
  pr::add_partitions_to_txn_request req;
  req.v3_and_below_transactional_id = *config_.transactional_id;
  req.v3_and_below_producer_id = idem_.producer_id().producer_id;
  req.v3_and_below_producer_epoch = idem_.producer_id().epoch;
  for (auto& tp : tps) {  // sorted: they come from the queues' map
    if (req.v3_and_below_topics.empty() || req.v3_and_below_topics.back().name != tp.topic)
      req.v3_and_below_topics.push_back({tp.topic, {}});
    req.v3_and_below_topics.back().partitions.push_back(tp.partition);
  }
  int16_t retry_code = -1;
  std::vector<topic_partition> added;
  int16_t failed_code = 0;
  std::string failed_what;
  auto conn = cluster_.coordinator(*config_.transactional_id, cluster::coordinator_transaction);
  if (conn) {
    auto resp = (*conn)->call(req, config_.request_timeout_ms);
    conn->release();
    if (resp) {
      for (auto& t : resp->results_by_topic_v3_and_below)
        for (auto& p : t.results_by_partition) {
          const int16_t code = p.partition_error_code;
          switch (classify_txn_error(code)) {
            case txn_error_kind::none: added.push_back({t.name, p.partition_index}); break;
            case txn_error_kind::retriable:
              if (retry_code <= 0 || code != pr::code(pr::error_code::operation_not_attempted)) retry_code = code;
              break;
            default:
              if (failed_code == 0) {
                failed_code = code;
                failed_what = fmt::format("{}-{}", t.name, p.partition_index);
              }
          }
        }
    } else {
      cluster_.forget_coordinator(*config_.transactional_id, cluster::coordinator_transaction);
    }
  }
  if (retry_code == pr::code(pr::error_code::not_coordinator) ||
      retry_code == pr::code(pr::error_code::coordinator_not_available))
    cluster_.forget_coordinator(*config_.transactional_id, cluster::coordinator_transaction);
  if (failed_code != 0) {
    std::string msg = is_fenced(failed_code)
                          ? fenced_message(idem_.producer_id(), failed_code)
                          : fmt::format("AddPartitionsToTxn for {} failed: {}", failed_what, describe_error(failed_code));
    fail_transaction(failed_code, msg);
  }
  std::lock_guard g(mu_);
  txn_.on_partitions_added(added);
  if (added.size() < tps.size()) {
    const int64_t backoff = retry_code == pr::code(pr::error_code::concurrent_transactions)
                                ? std::min<int64_t>(config_.retry_backoff_ms, 20)
                                : config_.retry_backoff_ms;
    next_add_partitions_ms_ = sys::monotonic_ms() + backoff;
  }
}

}  // namespace gregor::client
