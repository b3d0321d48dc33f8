// The node daemon's Prometheus metrics (common/metrics.h): what its source
// sends, what its replica receives and commits, its dump jobs and its
// mass-deletion holds. docs/OPERATIONS.md lists each with its meaning.
#ifndef GWMIRROR_NODE_METRICS_H_
#define GWMIRROR_NODE_METRICS_H_

#include "common/metrics.h"

namespace gwmirror {

struct NodeMetrics {
  // Source.
  MetricFamily& files_sent;         // {method="whole"|"delta"}
  MetricFamily& content_bytes;      // new content of the files sent
  MetricFamily& wire_bytes;         // protocol bytes of pushes
  MetricFamily& delta_saved_bytes;  // content minus delta bytes
  MetricFamily& cuts;               // {outcome="ok"|"failed"|"held"}
  MetricFamily& cut_duration;       // histogram
  MetricFamily& deletion_held;      // gauge 0/1
  MetricFamily& anomaly_held;       // gauge 0/1
  MetricFamily& send_rate;          // gauge, bytes/s over the last seconds
  MetricFamily& send_cap;           // gauge, bytes/s (0: no cap)
  MetricFamily& dump_runs;          // {dump, kind, outcome="ok"|"failed"}
  MetricFamily& dump_duration;      // histogram {dump}
  MetricFamily& dump_last_success;  // gauge {dump}, unix seconds
  // Replica.
  MetricFamily& received_files;
  MetricFamily& received_bytes;
  MetricFamily& commits;
  MetricFamily& committed_checkpoint;
  MetricFamily& scrub_problems;
  MetricFamily& verify_problems;  // gauge {kind="tree"|"history"}
  MetricFamily& repairs;          // counter {kind="tree"|"history"}

  // The families in DefaultMetrics(), declared on first use.
  static NodeMetrics& Get();
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_METRICS_H_
