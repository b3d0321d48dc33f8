#include "common/metrics_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

MHD_Result Reply(MHD_Connection* c, unsigned int code, const std::string& body,
                 const std::string& type) {
  MHD_Response* r = MHD_create_response_from_buffer(
      body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (r == nullptr) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type.c_str());
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  MHD_Result ret = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  return ret;
}

MHD_Result Answer(void* cls, MHD_Connection* c, const char* url,
                  const char* method, const char* /*version*/,
                  const char* /*upload_data*/, size_t* upload_size,
                  void** /*state*/) {
  const auto* pages = static_cast<const std::vector<HttpPage>*>(cls);
  const std::string text = "text/plain; charset=utf-8";
  if (std::strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
      std::strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
    return Reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET is served here\n",
                 text);
  }
  if (*upload_size != 0) {
    *upload_size = 0;  // A GET with a body: ignore it.
    return MHD_YES;
  }
  for (const HttpPage& p : *pages) {
    if (p.path == url) return Reply(c, MHD_HTTP_OK, p.render(), p.content_type);
  }
  std::string known;
  for (const HttpPage& p : *pages) absl::StrAppend(&known, " ", p.path);
  return Reply(c, MHD_HTTP_NOT_FOUND,
               absl::StrCat("not found; served here:", known, "\n"), text);
}

}  // namespace

void MetricsServer::StopDaemon::operator()(MHD_Daemon* d) const {
  MHD_stop_daemon(d);
}

HttpPage MetricsServer::Metrics(std::function<std::string()> render) {
  return HttpPage{"/metrics", "text/plain; version=0.0.4; charset=utf-8",
                  std::move(render)};
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::vector<HttpPage> pages) {
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
  s->pages_ = std::move(pages);
  s->daemon_.reset(MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, port, nullptr, nullptr,
      &Answer, &s->pages_, MHD_OPTION_SOCK_ADDR, &sa,
      MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT, 2u,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(64 * 1024),
      MHD_OPTION_END));
  if (s->daemon_ == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", address, " (in use, or not an address here)"));
  }
  const MHD_DaemonInfo* info =
      MHD_get_daemon_info(s->daemon_.get(), MHD_DAEMON_INFO_BIND_PORT);
  s->port_ = info != nullptr ? info->port : port;
  return s;
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::StartIfConfigured(
    const std::string& address, const std::string& port_file,
    std::vector<HttpPage> pages) {
  if (address.empty()) return nullptr;
  ASSIGN_OR_RETURN(std::unique_ptr<MetricsServer> s,
                   Start(address, std::move(pages)));
  if (!port_file.empty()) {
    RETURN_IF_ERROR(
        WriteFileAtomic(port_file, absl::StrCat(s->port(), "\n"), 0644));
  }
  return s;
}

MetricsServer::~MetricsServer() = default;

}  // namespace gwmirror
