#include "node/metrics.h"

namespace gwmirror {

NodeMetrics& NodeMetrics::Get() {
  static NodeMetrics* m = [] {
    MetricsRegistry& r = DefaultMetrics();
    auto* nm = new NodeMetrics{
        r.Counter("gwmirror_source_files_sent_total",
                  "Changed files this source sent to its replica, by method.",
                  {"method"}),
        r.Counter("gwmirror_source_content_bytes_total",
                  "Bytes of new file content this source sent (before "
                  "deltas and compression)."),
        r.Counter("gwmirror_source_wire_bytes_total",
                  "Protocol bytes of this source's pushes, both directions."),
        r.Counter("gwmirror_source_delta_saved_bytes_total",
                  "Content bytes that delta encoding did not have to send."),
        r.Counter("gwmirror_source_cuts_total",
                  "Checkpoint cuts this source ran, by outcome.", {"outcome"}),
        r.Histogram("gwmirror_source_cut_duration_seconds",
                    "Time from cut request to the checkpoint staged at the "
                    "replica.",
                    DurationBuckets()),
        r.Gauge("gwmirror_mass_deletion_held",
                "1 while this source holds a cut that would delete too much, "
                "until an operator releases it."),
        r.Gauge("gwmirror_anomaly_held",
                "1 while this source holds a cut whose rewritten files look "
                "encrypted (ransomware-like), until an operator releases it."),
        r.Gauge("gwmirror_send_rate_bytes",
                "Bytes per second this node sent over the last 5 seconds "
                "(pushes; config bandwidth caps them)."),
        r.Gauge("gwmirror_send_cap_bytes",
                "This node's bandwidth cap now, in bytes per second (0: "
                "none); a schedule changes it through the day."),
        r.Counter("gwmirror_dump_job_runs_total",
                  "Database dump job runs, by job (label dump) and outcome.",
                  {"dump", "kind", "outcome"}),
        r.Histogram("gwmirror_dump_job_duration_seconds",
                    "Duration of database dump job runs.", DurationBuckets(),
                    {"dump"}),
        r.Gauge("gwmirror_dump_job_last_success_timestamp_seconds",
                "Unix time of each dump job's last successful run.", {"dump"}),
        r.Counter("gwmirror_replica_received_files_total",
                  "Files this replica received from its source."),
        r.Counter("gwmirror_replica_received_bytes_total",
                  "Protocol bytes this replica received on push streams."),
        r.Counter("gwmirror_replica_commits_total",
                  "Checkpoints this replica committed."),
        r.Gauge("gwmirror_replica_committed_checkpoint",
                "The checkpoint this replica's tree holds."),
        r.Gauge("gwmirror_replica_scrub_problems",
                "Problems the last scrub of this replica's history found."),
        r.Gauge("gwmirror_replica_verify_problems",
                "Problems the last verify of this replica found: standby "
                "files differing from the committed checkpoint (tree), "
                "stored increments that do not verify (history).",
                {"kind"}),
        r.Counter("gwmirror_replica_repairs_total",
                  "Repairs verify --repair made: standby files recorded for "
                  "the next cut to replace (tree), increments re-encoded "
                  "from the tree (history).",
                  {"kind"}),
    };
    // Label values known up front have their series from the start.
    for (const char* method : {"whole", "delta"})
      nm->files_sent.Add(0, {method});
    for (const char* outcome : {"ok", "failed", "held"}) {
      nm->cuts.Add(0, {outcome});
    }
    for (const char* kind : {"tree", "history"}) {
      nm->verify_problems.Set(0, {kind});
      nm->repairs.Add(0, {kind});
    }
    return nm;
  }();
  return *m;
}

}  // namespace gwmirror
