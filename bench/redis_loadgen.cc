// gregor-redis-loadgen: Redis Streams as a peer of Gregor in bench/run.sh (see
// peer_common.h for the modes and the JSON line). Produce: XADD bench-<p> MAXLEN ~ N * v
// <record> on one pipelined connection (the replies come back in order, so the oldest
// record in flight is the one a reply acknowledges). End to end: a second connection in
// its own thread loops on XREAD BLOCK over every stream from the last id it saw, which
// Redis answers as soon as an entry arrives (the streams' long poll). The streams are
// deleted first; MAXLEN keeps Redis' memory bounded over a long run.
#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>

#include <deque>

#include "peer_common.h"

namespace {

constexpr long kMaxLen = 50000;  // entries kept per stream (approximately)

redisContext* connect(const std::string& server) {
  auto colon = server.rfind(':');
  std::string host = server.substr(0, colon);
  int port = std::atoi(server.substr(colon + 1).c_str());
  timeval tv{5, 0};
  redisContext* c = redisConnectWithTimeout(host.c_str(), port, tv);
  if (!c || c->err) {
    std::fprintf(stderr, "gregor-redis-loadgen: connect %s: %s\n", server.c_str(),
                 c ? c->errstr : "out of memory");
    std::exit(1);
  }
  redisSetTimeout(c, tv);  // a blocking read waits 5 s at most
  return c;
}

std::string stream(int p) { return "bench-" + std::to_string(p); }

// The subscriber: XREAD BLOCK 1000 STREAMS bench-0 .. bench-N id0 .. idN, forever.
void subscribe(const peer::options& o, peer::timings& t, std::atomic<bool>& stop) {
  redisContext* c = connect(o.server);
  std::vector<std::string> ids(o.partitions, "0-0");
  while (!stop.load()) {
    std::vector<std::string> args = {"XREAD", "BLOCK", "200", "STREAMS"};
    for (int p = 0; p < o.partitions; ++p) args.push_back(stream(p));
    for (auto& id : ids) args.push_back(id);
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, int(argv.size()), argv.data(), lens.data()));
    int64_t now = peer::now_ns();
    if (!r) {
      std::fprintf(stderr, "gregor-redis-loadgen: XREAD: %s\n", c->errstr);
      break;
    }
    if (r->type == REDIS_REPLY_ARRAY) {
      for (size_t s = 0; s < r->elements; ++s) {  // [stream, [[id, [field, value]] ...]]
        redisReply* sr = r->element[s];
        if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2) continue;
        int p = std::atoi(sr->element[0]->str + 6);  // "bench-<p>"
        redisReply* entries = sr->element[1];
        for (size_t e = 0; e < entries->elements; ++e) {
          redisReply* en = entries->element[e];
          if (en->elements != 2 || en->element[1]->elements != 2) continue;
          if (p >= 0 && p < o.partitions) ids[p] = en->element[0]->str;
          redisReply* v = en->element[1]->element[1];
          t.receive(peer::payload::seq_of(v->str, v->len), now);
        }
      }
    }
    freeReplyObject(r);
  }
  redisFree(c);
}

}  // namespace

int main(int argc, char** argv) {
  peer::options o = peer::parse(argc, argv);
  redisContext* c = connect(o.server);
  std::string durability = "?";
  if (auto* r = static_cast<redisReply*>(redisCommand(c, "CONFIG GET appendfsync"))) {
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) durability = r->element[1]->str;
    freeReplyObject(r);
  }
  if (auto* r = static_cast<redisReply*>(redisCommand(c, "CONFIG GET appendonly"))) {
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && std::string(r->element[1]->str) == "no")
      durability = "no aof";
    freeReplyObject(r);
  }
  for (int p = 0; p < o.partitions; ++p)
    freeReplyObject(redisCommand(c, "DEL %s", stream(p).c_str()));

  peer::timings t(peer::capacity_for(o));
  std::atomic<bool> stop{false};
  std::thread sub;
  if (o.e2e) {
    sub = std::thread([&] { subscribe(o, t, stop); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  std::deque<int64_t> in_flight;  // replies arrive in the order of the commands
  const std::string maxlen = std::to_string(kMaxLen);
  peer::client cl;
  cl.send = [&](int64_t seq, int p, const char* data, size_t len) {
    std::string key = stream(p);
    if (redisAppendCommand(c, "XADD %s MAXLEN ~ %s * v %b", key.c_str(), maxlen.c_str(), data, len) != REDIS_OK)
      return false;
    in_flight.push_back(seq);
    int done = 0;
    while (!done)  // the socket is blocking: this writes the whole command
      if (redisBufferWrite(c, &done) != REDIS_OK) return false;
    return true;
  };
  cl.serve = [&](int64_t until_ns) {
    for (;;) {
      int64_t now = peer::now_ns();
      if (in_flight.empty()) {
        if (until_ns > now) std::this_thread::sleep_for(std::chrono::nanoseconds(until_ns - now));
        return;
      }
      pollfd pfd{c->fd, POLLIN, 0};
      int64_t wait = std::max<int64_t>(0, until_ns - now);
      timespec ts{time_t(wait / 1'000'000'000), long(wait % 1'000'000'000)};
      int n = ppoll(&pfd, 1, &ts, nullptr);  // ns resolution: the pacer keeps its schedule
      if (n > 0) {
        if (redisBufferRead(c) != REDIS_OK) {
          std::fprintf(stderr, "gregor-redis-loadgen: read: %s\n", c->errstr);
          t.errors += int64_t(in_flight.size());
          in_flight.clear();
          return;
        }
        void* reply = nullptr;
        while (redisGetReplyFromReader(c, &reply) == REDIS_OK && reply) {
          int64_t at = peer::now_ns();
          auto* r = static_cast<redisReply*>(reply);
          int64_t seq = in_flight.front();
          in_flight.pop_front();
          if (r->type == REDIS_REPLY_ERROR) {
            if (t.errors++ == 0) std::fprintf(stderr, "gregor-redis-loadgen: XADD: %s\n", r->str);
          } else {
            t.ack(seq, at);
          }
          freeReplyObject(r);
          reply = nullptr;
        }
      }
      if (peer::now_ns() >= until_ns) return;
    }
  };
  cl.in_flight = [&] { return int64_t(in_flight.size()); };

  int status = peer::run(o, t, cl, [&](peer::json_line& j) {
    j.str("peer", "redis").str("server", o.server).str("appendfsync", durability);
  });
  stop = true;
  if (sub.joinable()) sub.join();
  redisFree(c);
  return status;
}
