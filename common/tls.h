// Mutual TLS for every channel: a cluster CA made with OpenSSL, node and
// operator certificates issued from it, and the gRPC credentials built from
// them. A peer's identity is its certificate's common name. Thread-safe.
#ifndef GWMIRROR_COMMON_TLS_H_
#define GWMIRROR_COMMON_TLS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

// Writes ca.pem and ca.key (0600) into `dir` (created 0700): a self-signed
// EC P-256 CA valid for `days`.
absl::Status CreateCa(const std::string& dir, const std::string& name,
                      int days = 3650);

// Issues `name` from the CA in `ca_dir` into `out_dir/<name>.pem` and
// `out_dir/<name>.key` (0600), usable as server and client certificate, with
// subjectAltNames DNS:<name>, DNS:localhost and IP:127.0.0.1. Returns the
// TlsConfig that names the three files.
absl::StatusOr<gwmirror::v1::TlsConfig> IssueCertificate(
    const std::string& ca_dir, const std::string& name,
    const std::string& out_dir, int days = 825);

// Server side: requires and verifies a client certificate from the CA.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const gwmirror::v1::TlsConfig& tls);

// Client side: a channel to `address` that accepts only a server whose
// certificate is issued by the CA for `server_name`.
absl::StatusOr<std::shared_ptr<grpc::Channel>> DialMutualTls(
    const gwmirror::v1::TlsConfig& tls, const std::string& address,
    const std::string& server_name);

// Builds and starts `builder` listening on `listen` with mutual TLS from
// `tls`; writes the bound port to `port_file` when it is not empty.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(
    grpc::ServerBuilder& builder, const gwmirror::v1::TlsConfig& tls,
    const std::string& listen, const std::string& port_file, int* port);

// The verified peer's certificate common name, or "" when there is none.
std::string PeerIdentity(const grpc::ServerContext& ctx);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_TLS_H_
