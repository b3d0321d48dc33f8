// Prometheus metrics of one process: families of counters, gauges and
// histograms, each with fixed label names, rendered in the text exposition
// format (version 0.0.4). A family without labels has its one series from
// the start (value 0), so every declared unlabeled metric is in every
// scrape. Thread-safe; families live as long as their registry.
#ifndef GWMIRROR_COMMON_METRICS_H_
#define GWMIRROR_COMMON_METRICS_H_

#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace gwmirror {

// A label value escaped for the exposition format (\\, \" and \n).
std::string EscapeLabelValue(std::string_view v);

class MetricFamily {
 public:
  enum class Type { kCounter, kGauge, kHistogram };
  using Values = std::initializer_list<std::string_view>;

  // Counter or gauge: adds `v` to the series with these label values (one
  // per label name, in order).
  void Add(double v, Values labels = {}) ABSL_LOCKS_EXCLUDED(mu_);
  // Gauge: sets the series.
  void Set(double v, Values labels = {}) ABSL_LOCKS_EXCLUDED(mu_);
  // Histogram: counts `v` into its buckets.
  void Observe(double v, Values labels = {}) ABSL_LOCKS_EXCLUDED(mu_);
  // The series' value (a histogram: its count); 0 when it does not exist.
  double Value(Values labels = {}) const ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& name() const { return name_; }
  void Render(std::string* out) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class MetricsRegistry;
  struct Series {
    double value = 0;  // counter, gauge; a histogram's sum
    std::vector<uint64_t> buckets;
    uint64_t count = 0;
  };
  MetricFamily(std::string name, std::string help, Type type,
               std::vector<std::string> label_names,
               std::vector<double> bounds);
  Series& At(Values labels) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string name_;
  const std::string help_;
  const Type type_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, Series> series_ ABSL_GUARDED_BY(mu_);
};

class MetricsRegistry {
 public:
  // Declares a family (a name declared twice returns the first family).
  MetricFamily& Counter(const std::string& name, const std::string& help,
                        std::vector<std::string> labels = {});
  MetricFamily& Gauge(const std::string& name, const std::string& help,
                      std::vector<std::string> labels = {});
  // `bounds`: the buckets' upper bounds, ascending (+Inf is implied).
  MetricFamily& Histogram(const std::string& name, const std::string& help,
                          std::vector<double> bounds,
                          std::vector<std::string> labels = {});
  std::string Render() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  MetricFamily& Declare(const std::string& name, const std::string& help,
                        MetricFamily::Type type,
                        std::vector<std::string> labels,
                        std::vector<double> bounds) ABSL_LOCKS_EXCLUDED(mu_);
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<MetricFamily>> families_ ABSL_GUARDED_BY(mu_);
};

// The process's registry, what its /metrics endpoint renders.
MetricsRegistry& DefaultMetrics();

// Bucket bounds for durations from 10 ms to 10 minutes.
std::vector<double> DurationBuckets();

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_METRICS_H_
