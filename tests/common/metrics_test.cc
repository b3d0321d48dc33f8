#include "common/metrics.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/match.h"
#include "common/fd.h"
#include "common/metrics_server.h"
#include "gtest/gtest.h"

namespace gwmirror {
namespace {

TEST(MetricsTest, RendersTheExpositionFormat) {
  MetricsRegistry r;
  MetricFamily& sent = r.Counter("x_sent_total", "Files sent.", {"method"});
  MetricFamily& up = r.Gauge("x_up", "Up.");
  MetricFamily& took =
      r.Histogram("x_duration_seconds", "Took.", {0.5, 1}, {"job"});
  sent.Add(3, {"delta"});
  sent.Add(2, {"delta"});
  up.Set(1);
  took.Observe(0.2, {"a\"b\\c\nd"});
  took.Observe(0.7, {"a\"b\\c\nd"});
  took.Observe(9, {"a\"b\\c\nd"});
  EXPECT_EQ(r.Render(),
            "# HELP x_sent_total Files sent.\n"
            "# TYPE x_sent_total counter\n"
            "x_sent_total{method=\"delta\"} 5\n"
            "# HELP x_up Up.\n"
            "# TYPE x_up gauge\n"
            "x_up 1\n"
            "# HELP x_duration_seconds Took.\n"
            "# TYPE x_duration_seconds histogram\n"
            "x_duration_seconds_bucket{job=\"a\\\"b\\\\c\\nd\",le=\"0.5\"} 1\n"
            "x_duration_seconds_bucket{job=\"a\\\"b\\\\c\\nd\",le=\"1\"} 2\n"
            "x_duration_seconds_bucket{job=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 3\n"
            "x_duration_seconds_sum{job=\"a\\\"b\\\\c\\nd\"} 9.9\n"
            "x_duration_seconds_count{job=\"a\\\"b\\\\c\\nd\"} 3\n");
  EXPECT_EQ(sent.Value({"delta"}), 5);
  EXPECT_EQ(sent.Value({"whole"}), 0);
  EXPECT_EQ(took.Value({"a\"b\\c\nd"}), 3);
}

TEST(MetricsTest, UnlabeledSeriesExistFromTheStartAndNamesAreDeclaredOnce) {
  MetricsRegistry r;
  MetricFamily& a = r.Counter("x_total", "First.");
  MetricFamily& b = r.Counter("x_total", "Second.");
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(r.Render(),
            "# HELP x_total First.\n# TYPE x_total counter\n"
            "x_total 0\n");
}

TEST(MetricsTest, ConcurrentUpdatesAreAllCounted) {
  MetricsRegistry r;
  MetricFamily& c = r.Counter("x_total", "Count.", {"k"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) c.Add(1, {"v"});
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.Value({"v"}), 40000);
  EXPECT_TRUE(absl::StrContains(r.Render(), "x_total{k=\"v\"} 40000\n"));
}

// One HTTP request to 127.0.0.1:port; the whole response.
std::string Http(int port, const std::string& request) {
  struct sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    return "";
  }
  if (!WriteAll(fd.get(), request).ok()) return "";
  std::string resp;
  char buf[4096];
  for (ssize_t n; (n = read(fd.get(), buf, sizeof(buf))) > 0;) {
    resp.append(buf, n);
  }
  return resp;
}

TEST(MetricsServerTest, ServesItsPagesAndNothingElse) {
  int renders = 0;
  auto server = MetricsServer::Start(
      "127.0.0.1:0", {MetricsServer::Metrics([&] {
                        ++renders;
                        return std::string("up 1\n");
                      }),
                      HttpPage{"/", "text/html; charset=utf-8",
                               [] { return std::string("<p>page</p>"); }}});
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);
  std::string r = Http(port, "GET /metrics HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(r, "HTTP/1.1 200")) << r;
  EXPECT_TRUE(absl::StrContains(r, "version=0.0.4")) << r;
  EXPECT_TRUE(absl::EndsWith(r, "\r\n\r\nup 1\n")) << r;
  r = Http(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(absl::StrContains(r, "text/html")) << r;
  EXPECT_TRUE(absl::EndsWith(r, "<p>page</p>")) << r;
  r = Http(port, "GET /etc/passwd HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(r, "HTTP/1.1 404")) << r;
  r = Http(port, "POST /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_TRUE(absl::StartsWith(r, "HTTP/1.1 405")) << r;
  // A request that never ends, and garbage, leave it serving.
  std::string huge = "GET /" + std::string(200000, 'a') + " HTTP/1.0\r\n\r\n";
  r = Http(port, huge);
  EXPECT_FALSE(absl::StartsWith(r, "HTTP/1.1 200")) << r.substr(0, 40);
  (void)Http(port, "\x01\x02garbage\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(Http(port, "GET /metrics HTTP/1.0\r\n\r\n"),
                               "HTTP/1.1 200"));
  EXPECT_EQ(renders, 2);
  for (const char* bad : {"localhost:80", "127.0.0.1", "127.0.0.1:99999", ""}) {
    auto s = MetricsServer::Start(bad, {});
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace gwmirror
