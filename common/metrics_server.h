// The daemons' HTTP endpoint: GET /metrics (the Prometheus text exposition
// from a callback) and, on the coordinator, the status page at /. Served by
// libmicrohttpd (Debian's libmicrohttpd-dev: a well-kept embedded HTTP
// server, rather than parsing HTTP ourselves) from one internal thread,
// at most 16 connections, each closed after 2 s idle and bounded to 64 KiB
// of request memory. Anything but GET or HEAD is 405; an unknown path 404.
#ifndef GWMIRROR_COMMON_METRICS_SERVER_H_
#define GWMIRROR_COMMON_METRICS_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

struct MHD_Daemon;

namespace gwmirror {

struct HttpPage {
  std::string path;  // "/metrics"
  std::string content_type;
  std::function<std::string()> render;
};

class MetricsServer {
 public:
  // The /metrics page of `render`.
  static HttpPage Metrics(std::function<std::string()> render);
  // Listens on `address` ("IPv4:port", port 0 picks one).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::vector<HttpPage> pages);
  // Start() when `address` is not empty (writing the bound port to
  // `port_file` when that is not empty either); nullptr otherwise.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> StartIfConfigured(
      const std::string& address, const std::string& port_file,
      std::vector<HttpPage> pages);
  ~MetricsServer();  // Stops serving.
  int port() const { return port_; }

 private:
  MetricsServer() = default;
  struct StopDaemon {
    void operator()(MHD_Daemon* d) const;
  };

  std::vector<HttpPage> pages_;
  std::unique_ptr<MHD_Daemon, StopDaemon> daemon_;
  int port_ = 0;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_METRICS_SERVER_H_
