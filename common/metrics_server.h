// A minimal HTTP/1.0 endpoint for Prometheus: GET /metrics answers the text
// exposition format from a callback; anything else is a 404. One thread,
// one connection at a time, each bounded by a 2 s read timeout and an 8 KiB
// request: the scraper is the only expected client. Why not a library:
// none is packaged in Debian for C++ that is smaller than these 100 lines
// (prometheus-cpp is not), and the format is plain text.
#ifndef GWMIRROR_COMMON_METRICS_SERVER_H_
#define GWMIRROR_COMMON_METRICS_SERVER_H_

#include <functional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/fd.h"

namespace gwmirror {

class MetricsServer {
 public:
  // Listens on `address` ("host:port", port 0 picks one).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::function<std::string()> render);
  // Start() when `address` is not empty (writing the bound port to
  // `port_file` when that is not empty either); nullptr otherwise.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> StartIfConfigured(
      const std::string& address, const std::string& port_file,
      std::function<std::string()> render);
  ~MetricsServer();  // Stops the thread.
  int port() const { return port_; }

 private:
  MetricsServer() = default;
  void Run();
  void Serve(int conn);

  UniqueFd listen_fd_;
  UniqueFd stop_fd_;
  int port_ = 0;
  std::function<std::string()> render_;
  std::thread thread_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_METRICS_SERVER_H_
