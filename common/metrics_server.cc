#include "common/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace gwmirror {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::function<std::string()> render) {
  size_t colon = address.rfind(':');
  int port = 0;
  struct sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535 ||
      inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address \"", address, "\" is not IPv4-address:port"));
  }
  sa.sin_port = htons(static_cast<uint16_t>(port));
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  s->render_ = std::move(render);
  s->listen_fd_.Reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s->listen_fd_.valid()) return ErrnoStatus(errno, "socket");
  int one = 1;
  setsockopt(s->listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(s->listen_fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) !=
          0 ||
      listen(s->listen_fd_.get(), 16) != 0) {
    return ErrnoStatus(errno, absl::StrCat("listen on ", address));
  }
  socklen_t len = sizeof(sa);
  getsockname(s->listen_fd_.get(), reinterpret_cast<sockaddr*>(&sa), &len);
  s->port_ = ntohs(sa.sin_port);
  s->stop_fd_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!s->stop_fd_.valid()) return ErrnoStatus(errno, "eventfd");
  MetricsServer* raw = s.get();
  s->thread_ = std::thread([raw] { raw->Run(); });
  return s;
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::StartIfConfigured(
    const std::string& address, const std::string& port_file,
    std::function<std::string()> render) {
  if (address.empty()) return nullptr;
  ASSIGN_OR_RETURN(std::unique_ptr<MetricsServer> s,
                   Start(address, std::move(render)));
  if (!port_file.empty()) {
    RETURN_IF_ERROR(
        WriteFileAtomic(port_file, absl::StrCat(s->port(), "\n"), 0644));
  }
  return s;
}

MetricsServer::~MetricsServer() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(stop_fd_.get(), &one, sizeof(one));
    thread_.join();
  }
}

void MetricsServer::Run() {
  for (;;) {
    struct pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0},
                            {stop_fd_.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents & POLLIN) return;
    if (!(fds[0].revents & POLLIN)) continue;
    UniqueFd conn(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (conn.valid()) Serve(conn.get());
  }
}

void MetricsServer::Serve(int conn) {
  struct timeval tv = {2, 0};
  setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string req;
  char buf[1024];
  while (req.size() < 8192 && !absl::StrContains(req, "\r\n\r\n") &&
         !absl::StrContains(req, "\n\n")) {
    ssize_t n = read(conn, buf, sizeof(buf));
    if (n <= 0) break;
    req.append(buf, n);
  }
  std::string status = "404 Not Found";
  std::string body = "only GET /metrics is served here\n";
  std::string type = "text/plain; charset=utf-8";
  if (absl::StartsWith(req, "GET /metrics ") ||
      absl::StartsWith(req, "GET /metrics?")) {
    status = "200 OK";
    body = render_();
    type = "text/plain; version=0.0.4; charset=utf-8";
  }
  std::string resp =
      absl::StrCat("HTTP/1.0 ", status, "\r\nContent-Type: ", type,
                   "\r\nContent-Length: ", body.size(),
                   "\r\nConnection: close\r\n\r\n", body);
  (void)WriteAll(conn, resp);
}

}  // namespace gwmirror
