// gregor-nats-loadgen: NATS JetStream (file storage) as a peer of Gregor in bench/run.sh
// (see peer_common.h for the modes and the JSON line). Produce: js_PublishAsync to
// bench.<p> of a stream "BENCH" (subjects bench.*, file storage, one replica), latency to
// the server's publish acknowledgement (the JetStream ack: the record is stored). End to end:
// a push consumer (ephemeral, deliver new, no acks) on bench.* whose callback takes each
// record. The stream is deleted and created again first, with a byte limit (oldest
// records discarded) so the run's disk use stays bounded.
#include <nats/nats.h>

#include "peer_common.h"

namespace {

struct state {
  peer::timings* t = nullptr;
  std::atomic<int64_t> sent{0};
};

void on_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* st = static_cast<state*>(closure);
  int64_t now = peer::now_ns();
  int64_t seq = peer::payload::seq_of(natsMsg_GetData(msg), size_t(natsMsg_GetDataLength(msg)));
  if (pa) {
    st->t->ack(seq, now);
  } else {
    if (st->t->errors++ == 0)
      std::fprintf(stderr, "gregor-nats-loadgen: publish failed: %s\n",
                   pae && pae->ErrText ? pae->ErrText : natsStatus_GetText(pae ? pae->Err : NATS_ERR));
  }
  natsMsg_Destroy(msg);
}

void on_record(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* st = static_cast<state*>(closure);
  int64_t now = peer::now_ns();
  st->t->receive(peer::payload::seq_of(natsMsg_GetData(msg), size_t(natsMsg_GetDataLength(msg))), now);
  natsMsg_Destroy(msg);
}

[[noreturn]] void fail(const char* what, natsStatus s) {
  std::fprintf(stderr, "gregor-nats-loadgen: %s: %s %s\n", what, natsStatus_GetText(s),
               nats_GetLastError(nullptr) ? nats_GetLastError(nullptr) : "");
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  peer::options o = peer::parse(argc, argv);
  peer::timings t(peer::capacity_for(o));
  state st;
  st.t = &t;

  natsOptions* nopts = nullptr;
  natsConnection* nc = nullptr;
  natsStatus s = natsOptions_Create(&nopts);
  if (s == NATS_OK) s = natsOptions_SetURL(nopts, ("nats://" + o.server).c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(nopts, 5000);
  if (s == NATS_OK) s = natsConnection_Connect(&nc, nopts);
  if (s != NATS_OK) fail("connect", s);

  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.AckHandler = on_ack;
  jo.PublishAsync.AckHandlerClosure = &st;
  jo.PublishAsync.MaxPending = std::max<int64_t>(o.window, 100000);
  jsCtx* js = nullptr;
  if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK) fail("JetStream context", s);

  js_DeleteStream(js, "BENCH", nullptr, nullptr);  // absent the first time
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = "BENCH";
  const char* subjects[] = {"bench.*"};
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  sc.Replicas = 1;
  sc.MaxBytes = int64_t(1) << 30;  // oldest records go first beyond 1 GiB
  jsErrCode jerr = jsErrCode(0);
  jsStreamInfo* si = nullptr;
  if ((s = js_AddStream(&si, js, &sc, nullptr, &jerr)) != NATS_OK) fail("add stream", s);
  jsStreamInfo_Destroy(si);

  natsSubscription* sub = nullptr;
  if (o.e2e) {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = "BENCH";
    so.Config.DeliverPolicy = js_DeliverNew;
    so.Config.AckPolicy = js_AckNone;
    so.Config.MaxAckPending = -1;
    if ((s = js_Subscribe(&sub, js, "bench.*", on_record, &st, nullptr, &so, &jerr)) != NATS_OK)
      fail("subscribe", s);
    natsSubscription_SetPendingLimits(sub, -1, -1);
  }

  std::vector<std::string> subject;
  for (int p = 0; p < o.partitions; ++p) subject.push_back("bench." + std::to_string(p));
  peer::client cl;
  cl.send = [&](int64_t, int p, const char* data, size_t len) {
    natsStatus ps = js_PublishAsync(js, subject[p].c_str(), data, int(len), nullptr);
    if (ps != NATS_OK) {
      std::fprintf(stderr, "gregor-nats-loadgen: publish: %s\n", natsStatus_GetText(ps));
      return false;
    }
    st.sent.fetch_add(1, std::memory_order_relaxed);
    return true;
  };
  // Acknowledgements arrive on the library's own thread: serving them is waiting.
  cl.serve = [&](int64_t until_ns) {
    int64_t wait = until_ns - peer::now_ns();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
  };
  cl.in_flight = [&] { return st.sent.load() - t.n_acked.load() - t.errors.load(); };

  int status = peer::run(o, t, cl, [&](peer::json_line& j) {
    j.str("peer", "nats").str("server", o.server).str("storage", "file");
  });
  if (sub) {
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
  }
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  natsOptions_Destroy(nopts);
  return status;
}
