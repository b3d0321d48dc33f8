#include "common/metrics.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace gwmirror {
namespace {

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  // The shortest form that reads back as the same double.
  for (int precision = 15;; ++precision) {
    std::string s = absl::StrFormat("%.*g", precision, v);
    if (precision == 17 || std::strtod(s.c_str(), nullptr) == v) return s;
  }
}

}  // namespace

std::string EscapeLabelValue(std::string_view v) {
  std::string e;
  e.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      e.push_back('\\');
    } else if (c == '\n') {
      e += "\\n";
      continue;
    }
    e.push_back(c);
  }
  return e;
}

MetricFamily::MetricFamily(std::string name, std::string help, Type type,
                           std::vector<std::string> label_names,
                           std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {
  if (label_names_.empty()) {
    absl::MutexLock l(&mu_);
    At({});
  }
}

MetricFamily::Series& MetricFamily::At(Values labels) {
  // A caller passing the wrong number of values is a programming error; it
  // gets its values padded or cut rather than a crash in production.
  std::vector<std::string> key(labels.begin(), labels.end());
  key.resize(label_names_.size());
  Series& s = series_[key];
  if (type_ == Type::kHistogram && s.buckets.empty()) {
    s.buckets.assign(bounds_.size(), 0);
  }
  return s;
}

void MetricFamily::Add(double v, Values labels) {
  absl::MutexLock l(&mu_);
  At(labels).value += v;
}

void MetricFamily::Set(double v, Values labels) {
  absl::MutexLock l(&mu_);
  At(labels).value = v;
}

void MetricFamily::Observe(double v, Values labels) {
  absl::MutexLock l(&mu_);
  Series& s = At(labels);
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (v <= bounds_[i]) ++s.buckets[i];
  }
  s.value += v;
  ++s.count;
}

double MetricFamily::Value(Values labels) const {
  std::vector<std::string> key(labels.begin(), labels.end());
  key.resize(label_names_.size());
  absl::MutexLock l(&mu_);
  auto it = series_.find(key);
  if (it == series_.end()) return 0;
  return type_ == Type::kHistogram ? it->second.count : it->second.value;
}

void MetricFamily::Render(std::string* out) const {
  static constexpr const char* kTypes[] = {"counter", "gauge", "histogram"};
  absl::StrAppend(out, "# HELP ", name_, " ", help_, "\n# TYPE ", name_, " ",
                  kTypes[static_cast<int>(type_)], "\n");
  auto labels = [&](const std::vector<std::string>& values,
                    const std::string& extra) {
    std::string l;
    for (size_t i = 0; i < label_names_.size(); ++i) {
      absl::StrAppend(&l, l.empty() ? "" : ",", label_names_[i], "=\"",
                      EscapeLabelValue(values[i]), "\"");
    }
    if (!extra.empty()) absl::StrAppend(&l, l.empty() ? "" : ",", extra);
    return l.empty() ? l : absl::StrCat("{", l, "}");
  };
  absl::MutexLock l(&mu_);
  for (const auto& [key, s] : series_) {
    if (type_ != Type::kHistogram) {
      absl::StrAppend(out, name_, labels(key, ""), " ", Number(s.value), "\n");
      continue;
    }
    for (size_t i = 0; i < bounds_.size(); ++i) {
      absl::StrAppend(
          out, name_, "_bucket",
          labels(key, absl::StrCat("le=\"", Number(bounds_[i]), "\"")), " ",
          s.buckets[i], "\n");
    }
    absl::StrAppend(out, name_, "_bucket", labels(key, "le=\"+Inf\""), " ",
                    s.count, "\n", name_, "_sum", labels(key, ""), " ",
                    Number(s.value), "\n", name_, "_count", labels(key, ""),
                    " ", s.count, "\n");
  }
}

MetricFamily& MetricsRegistry::Declare(const std::string& name,
                                       const std::string& help,
                                       MetricFamily::Type type,
                                       std::vector<std::string> labels,
                                       std::vector<double> bounds) {
  absl::MutexLock l(&mu_);
  for (const auto& f : families_) {
    if (f->name() == name) return *f;
  }
  families_.push_back(std::unique_ptr<MetricFamily>(new MetricFamily(
      name, help, type, std::move(labels), std::move(bounds))));
  return *families_.back();
}

MetricFamily& MetricsRegistry::Counter(const std::string& name,
                                       const std::string& help,
                                       std::vector<std::string> labels) {
  return Declare(name, help, MetricFamily::Type::kCounter, std::move(labels),
                 {});
}

MetricFamily& MetricsRegistry::Gauge(const std::string& name,
                                     const std::string& help,
                                     std::vector<std::string> labels) {
  return Declare(name, help, MetricFamily::Type::kGauge, std::move(labels), {});
}

MetricFamily& MetricsRegistry::Histogram(const std::string& name,
                                         const std::string& help,
                                         std::vector<double> bounds,
                                         std::vector<std::string> labels) {
  return Declare(name, help, MetricFamily::Type::kHistogram, std::move(labels),
                 std::move(bounds));
}

std::string MetricsRegistry::Render() const {
  std::string out;
  absl::MutexLock l(&mu_);
  for (const auto& f : families_) f->Render(&out);
  return out;
}

MetricsRegistry& DefaultMetrics() {
  static MetricsRegistry* r = new MetricsRegistry();
  return *r;
}

std::vector<double> DurationBuckets() {
  return {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
}

}  // namespace gwmirror
