// Mutual TLS for every channel: a cluster CA made with OpenSSL, node and
// operator certificates issued from it, and the gRPC credentials built from
// them. A peer's identity is its certificate's common name. Thread-safe.
#ifndef GWMIRROR_COMMON_TLS_H_
#define GWMIRROR_COMMON_TLS_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

// Writes ca.pem and ca.key (0600) into `dir` (created 0700): a self-signed
// EC P-256 CA valid for `days`.
absl::Status CreateCa(const std::string& dir, const std::string& name,
                      int days = 3650);

// CA rotation, without downtime: BeginCaRotation makes a new CA in
// `ca_dir` (a new ca.key, which `IssueCertificate` signs with from then
// on; the old key kept as ca.key.old) and makes ca.pem the bundle of the
// old and the new CA, which every process trusts once it has it (a
// reload); certificates are then renewed from the new CA; FinishCaRotation
// leaves only the new CA in ca.pem (FAILED_PRECONDITION while a
// certificate in `certs_dir` is still from the old one) and removes the old
// key. docs/OPERATIONS.md has the whole procedure.
absl::Status BeginCaRotation(const std::string& ca_dir, const std::string& name,
                             int days = 3650);
absl::Status FinishCaRotation(const std::string& ca_dir,
                              const std::string& certs_dir);
// Whether the PEM certificate `cert_pem` was issued by the CA that
// `ca_dir` issues with now (its ca.key).
absl::StatusOr<bool> IssuedByCurrentCa(const std::string& ca_dir,
                                       absl::string_view cert_pem);

struct IssueOptions {
  int days = 825;
  // Extra subjectAltNames: host names, or IPv4/IPv6 addresses.
  std::vector<std::string> hosts;
  // Start of validity (tests backdate certificates to make expired ones);
  // by default an hour ago, for clocks slightly behind.
  absl::Time not_before = absl::InfinitePast();
  // The role it is issued for ("operator", "viewer", "node", ...), kept as
  // the subject's organizational unit: what the certificate may do is
  // decided by the configs that list its name, this only documents it.
  std::string role;
};

// Issues `name` from the CA in `ca_dir` into `out_dir/<name>.pem` and
// `out_dir/<name>.key` (0600), usable as server and client certificate, with
// subjectAltNames DNS:<name>, DNS:localhost, IP:127.0.0.1 and the options'
// hosts. Returns the TlsConfig that names the three files.
absl::StatusOr<gwmirror::v1::TlsConfig> IssueCertificate(
    const std::string& ca_dir, const std::string& name,
    const std::string& out_dir, const IssueOptions& options = {});

struct CertificateInfo {
  std::string subject;  // common name
  std::string issuer;   // issuer's common name
  absl::Time not_before;
  absl::Time not_after;
  std::vector<std::string> hosts;  // subjectAltNames
  bool is_ca = false;
  std::string role;  // the subject's organizational unit, if any
};

// What a PEM certificate says; INVALID_ARGUMENT naming `what` when it is
// not one.
absl::StatusOr<CertificateInfo> InspectCertificate(absl::string_view pem,
                                                   const std::string& what);

// Checks `tls` before it is used: the certificate is issued by the CA in
// ca_file, valid at `now`, and key_file is its key. FAILED_PRECONDITION
// naming the file and the problem ("... expired on ...", "... is not
// issued by the cluster CA ...", "... does not match ...").
absl::StatusOr<CertificateInfo> CheckTlsMaterial(
    const gwmirror::v1::TlsConfig& tls, absl::Time now);

// Signs `data` (ECDSA or any key type OpenSSL signs with, over SHA-256)
// with the PEM private key in `key_file`.
absl::StatusOr<std::string> SignWithKey(const std::string& key_file,
                                        absl::string_view data);

// Checks that `cert_pem` was issued by a CA of the bundle in `ca_file` and
// was valid at `at`, and that `signature` over `data` verifies with its
// key. PERMISSION_DENIED saying which check failed; the certificate's
// details when all hold.
absl::StatusOr<CertificateInfo> VerifySignedBy(absl::string_view cert_pem,
                                               const std::string& ca_file,
                                               absl::Time at,
                                               absl::string_view data,
                                               absl::string_view signature);

// Sets gwmirror_certificate_expiry_timestamp_seconds{identity} in the
// process's metrics.
void RecordCertificateExpiry(const CertificateInfo& info);

// Server side: requires and verifies a client certificate from the CA.
// Both sides refuse material CheckTlsMaterial refuses.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const gwmirror::v1::TlsConfig& tls);

// Client side: a channel to `address` that accepts only a server whose
// certificate is issued by the CA for `server_name`.
absl::StatusOr<std::shared_ptr<grpc::Channel>> DialMutualTls(
    const gwmirror::v1::TlsConfig& tls, const std::string& address,
    const std::string& server_name);

// Call first in main, before any gRPC object exists. gRPC polls a
// connection attempt only while some call waits on its channel; a call that
// fails fast leaves the attempt to the backup poller, every 5 s by default,
// by when our connect deadline (5 s, DialMutualTls) has passed and the attempt
// dies in its TLS handshake, again and again. The backup poller here runs
// every 500 ms (GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS, unless the
// environment sets it).
void PrepareGrpc();

// The most metadata a server accepts on one call (bytes).
inline constexpr int kMaxMetadataBytes = 16 << 10;
// Both ends ping a quiet connection this often and drop it when a ping is
// not answered within the timeout: a dead link is found in 10-15 s.
inline constexpr int kKeepaliveMs = 10'000;
inline constexpr int kKeepaliveTimeoutMs = 5'000;

// Builds and starts `builder` listening on `listen` with mutual TLS from
// `tls`; writes the bound port to `port_file` when it is not empty. The
// standard health service (grpc.health.v1.Health) says SERVING for the
// server ("") and for each of `services` (fully qualified names). Every
// server bounds metadata (kMaxMetadataBytes), streams per connection (64),
// and its gRPC memory (512 MiB) and threads (128).
absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(
    grpc::ServerBuilder& builder, const gwmirror::v1::TlsConfig& tls,
    const std::string& listen, const std::string& port_file, int* port,
    const std::vector<std::string>& services);

// Says NOT_SERVING on the health service, then shuts `server` down
// (in-flight calls get five seconds).
void StopServer(grpc::Server* server);

// A daemon's TLS material, renewable while it runs: the configured files
// are checked (as CheckTlsMaterial does) and copied into `dir` (0700);
// gRPC's file watcher re-reads the copies every second for new handshakes,
// on the server and on every channel this process dials (DialMutualTls
// and StartServer use the reloader registered for the same cert_file).
// Reload() re-reads the configured files: when they changed and check
// out, the copies are replaced (a renewed certificate, a CA bundle with a
// new CA beside the old, the old one retired); when they do not, the old
// material stays and the refusal names the file and the problem. It runs
// on SIGHUP (the daemons' signal loop) and every `poll` by itself.
// Thread-safe.
class TlsReloader {
 public:
  // `on_reload` (may be empty) runs after new material was taken.
  static absl::StatusOr<std::unique_ptr<TlsReloader>> Start(
      const gwmirror::v1::TlsConfig& configured, std::string dir,
      std::function<void(const CertificateInfo&)> on_reload = nullptr,
      absl::Duration poll = absl::Seconds(10));
  ~TlsReloader();

  // OK when nothing changed or the new material was taken.
  absl::Status Reload();

 private:
  friend absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>>
  MakeServerCredentials(const gwmirror::v1::TlsConfig& tls);
  friend absl::StatusOr<std::shared_ptr<grpc::Channel>> DialMutualTls(
      const gwmirror::v1::TlsConfig& tls, const std::string& address,
      const std::string& server_name);
  TlsReloader(gwmirror::v1::TlsConfig configured, std::string dir);
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;
  std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials() const;

  struct State;
  std::unique_ptr<State> state_;
};

// The verified peer's certificate common name, or "" when there is none.
std::string PeerIdentity(const grpc::ServerContext& ctx);

// The verified peer's certificate.
absl::StatusOr<CertificateInfo> PeerCertificate(const grpc::ServerContext& ctx);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_TLS_H_
