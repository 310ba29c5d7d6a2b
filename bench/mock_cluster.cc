// gregor-mock-cluster: librdkafka's in-memory mock cluster in a process of its own.
//
// Starts rd_kafka_mock_cluster_new() with the requested number of brokers (1 by default),
// creates the topics given with --topic NAME[:PARTITIONS], prints the bootstrap servers
// as one line on stdout and stays up until stdin reaches end of file or the process gets
// SIGTERM/SIGINT. Diagnostics go to stderr.
//
//   gregor-mock-cluster [--brokers N] [--partitions P] [--topic NAME[:P]]... [--no-stdin]

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

volatile sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "gregor-mock-cluster: %s\n"
               "usage: gregor-mock-cluster [--brokers N] [--partitions P] "
               "[--topic NAME[:P]]... [--no-stdin]\n",
               why);
  std::exit(64);
}

struct topic_spec {
  std::string name;
  int partitions;
};

}  // namespace

int main(int argc, char** argv) {
  int brokers = 1;
  int default_partitions = 4;
  bool watch_stdin = true;
  std::vector<std::string> raw_topics;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + arg).c_str());
      return argv[++i];
    };
    if (arg == "--brokers") {
      brokers = std::atoi(value().c_str());
    } else if (arg == "--partitions") {
      default_partitions = std::atoi(value().c_str());
    } else if (arg == "--topic") {
      raw_topics.push_back(value());
    } else if (arg == "--no-stdin") {
      watch_stdin = false;
    } else if (arg == "-h" || arg == "--help") {
      usage("help");
    } else {
      usage(("unknown argument " + arg).c_str());
    }
  }
  if (brokers < 1 || default_partitions < 1) usage("--brokers and --partitions must be >= 1");
  std::vector<topic_spec> topics;
  for (const auto& t : raw_topics) {
    auto colon = t.rfind(':');
    if (colon == std::string::npos) {
      topics.push_back({t, default_partitions});
    } else {
      int p = std::atoi(t.c_str() + colon + 1);
      if (p < 1) usage(("bad partition count in " + t).c_str());
      topics.push_back({t.substr(0, colon), p});
    }
  }

  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGPIPE, SIG_IGN);

  // The mock cluster lives inside an rd_kafka_t handle; a producer handle that never
  // produces is the lightest host.
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "client.id", "gregor-mock-cluster", errstr, sizeof errstr) !=
      RD_KAFKA_CONF_OK) {
    std::fprintf(stderr, "gregor-mock-cluster: %s\n", errstr);
    return 1;
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!rk) {
    std::fprintf(stderr, "gregor-mock-cluster: rd_kafka_new: %s\n", errstr);
    return 1;
  }
  rd_kafka_mock_cluster_t* mcluster = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mcluster) {
    std::fprintf(stderr, "gregor-mock-cluster: rd_kafka_mock_cluster_new failed\n");
    rd_kafka_destroy(rk);
    return 1;
  }
  for (const auto& t : topics) {
    rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(mcluster, t.name.c_str(), t.partitions, 1);
    if (err) {
      std::fprintf(stderr, "gregor-mock-cluster: creating topic %s: %s\n", t.name.c_str(),
                   rd_kafka_err2str(err));
      rd_kafka_mock_cluster_destroy(mcluster);
      rd_kafka_destroy(rk);
      return 1;
    }
  }

  std::printf("%s\n", rd_kafka_mock_cluster_bootstraps(mcluster));
  std::fflush(stdout);
  std::fprintf(stderr, "gregor-mock-cluster: %d broker(s) at %s, %zu topic(s) created\n", brokers,
               rd_kafka_mock_cluster_bootstraps(mcluster), topics.size());

  while (!g_stop) {
    if (!watch_stdin) {
      poll(nullptr, 0, 200);  // wait for a signal without racing it
      continue;
    }
    pollfd pfd{STDIN_FILENO, POLLIN, 0};
    int n = poll(&pfd, 1, 500);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (n == 0) continue;
    char buf[4096];
    ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
    if (r == 0) break;  // stdin closed: the parent is done with us
    if (r < 0 && errno != EINTR && errno != EAGAIN) break;
  }

  std::fprintf(stderr, "gregor-mock-cluster: shutting down\n");
  rd_kafka_mock_cluster_destroy(mcluster);
  rd_kafka_destroy(rk);
  return 0;
}
