#include "common/metrics.h"

#include <thread>

#include "absl/strings/match.h"
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

}  // namespace
}  // namespace gwmirror
