#include "common/tls.h"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* e) const { X509_EXTENSION_free(e); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

absl::Status SslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": OpenSSL error"));
}

absl::StatusOr<PkeyPtr> NewKey() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return SslError("generate key");
  return key;
}

std::string PemOfKey(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr,
                           nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, n);
}

std::string PemOfCert(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, n);
}

absl::Status AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, ExtFree> ext(
      X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return SslError(absl::StrCat("add extension ", value));
  }
  return absl::OkStatus();
}

absl::StatusOr<X509Ptr> NewCert(const std::string& cn, EVP_PKEY* subject_key,
                                X509* issuer, EVP_PKEY* issuer_key, int days,
                                bool is_ca) {
  X509Ptr cert(X509_new());
  if (!cert) return SslError("X509_new");
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(
      BN_bin2bn(serial, sizeof serial, nullptr), BN_free);
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400L * days);
  X509_set_pubkey(cert.get(), subject_key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("gwmirror"),
                             -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()),
                             -1, -1, 0);
  X509* iss = issuer ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(iss));
  if (is_ca) {
    RETURN_IF_ERROR(
        AddExt(cert.get(), iss, NID_basic_constraints, "critical,CA:TRUE"));
    RETURN_IF_ERROR(
        AddExt(cert.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign"));
  } else {
    RETURN_IF_ERROR(
        AddExt(cert.get(), iss, NID_basic_constraints, "critical,CA:FALSE"));
    RETURN_IF_ERROR(AddExt(cert.get(), iss, NID_key_usage,
                           "critical,digitalSignature,keyAgreement"));
    RETURN_IF_ERROR(
        AddExt(cert.get(), iss, NID_ext_key_usage, "serverAuth,clientAuth"));
    std::string san = absl::StrCat("DNS:", cn, ",DNS:localhost,IP:127.0.0.1");
    RETURN_IF_ERROR(AddExt(cert.get(), iss, NID_subject_alt_name, san.c_str()));
  }
  RETURN_IF_ERROR(AddExt(cert.get(), iss, NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) {
    return SslError("sign certificate");
  }
  return cert;
}

absl::StatusOr<X509Ptr> ReadCert(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadFileToString(path));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a PEM certificate"));
  }
  return cert;
}

absl::StatusOr<PkeyPtr> ReadKey(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadFileToString(path));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a PEM private key"));
  }
  return key;
}

struct Material {
  std::string ca, cert, key;
};

absl::StatusOr<Material> LoadMaterial(const gwmirror::v1::TlsConfig& tls) {
  if (tls.ca_file().empty() || tls.cert_file().empty() ||
      tls.key_file().empty()) {
    return absl::InvalidArgumentError(
        "tls: ca_file, cert_file and key_file are all required");
  }
  Material m;
  ASSIGN_OR_RETURN(m.ca, ReadFileToString(tls.ca_file()));
  ASSIGN_OR_RETURN(m.cert, ReadFileToString(tls.cert_file()));
  ASSIGN_OR_RETURN(m.key, ReadFileToString(tls.key_file()));
  return m;
}

}  // namespace

absl::Status CreateCa(const std::string& dir, const std::string& name,
                      int days) {
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  ASSIGN_OR_RETURN(X509Ptr cert,
                   NewCert(name, key.get(), nullptr, key.get(), days, true));
  RETURN_IF_ERROR(WriteFileAtomic(dir + "/ca.key", PemOfKey(key.get()), 0600));
  return WriteFileAtomic(dir + "/ca.pem", PemOfCert(cert.get()), 0644);
}

absl::StatusOr<gwmirror::v1::TlsConfig> IssueCertificate(
    const std::string& ca_dir, const std::string& name,
    const std::string& out_dir, int days) {
  ASSIGN_OR_RETURN(X509Ptr ca, ReadCert(ca_dir + "/ca.pem"));
  ASSIGN_OR_RETURN(PkeyPtr ca_key, ReadKey(ca_dir + "/ca.key"));
  ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  ASSIGN_OR_RETURN(X509Ptr cert, NewCert(name, key.get(), ca.get(),
                                         ca_key.get(), days, false));
  RETURN_IF_ERROR(MakeDirs(out_dir, 0700));
  gwmirror::v1::TlsConfig tls;
  tls.set_ca_file(ca_dir + "/ca.pem");
  tls.set_cert_file(out_dir + "/" + name + ".pem");
  tls.set_key_file(out_dir + "/" + name + ".key");
  RETURN_IF_ERROR(WriteFileAtomic(tls.key_file(), PemOfKey(key.get()), 0600));
  RETURN_IF_ERROR(
      WriteFileAtomic(tls.cert_file(), PemOfCert(cert.get()), 0644));
  return tls;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const gwmirror::v1::TlsConfig& tls) {
  ASSIGN_OR_RETURN(Material m, LoadMaterial(tls));
  grpc::SslServerCredentialsOptions opts(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  opts.pem_root_certs = m.ca;
  opts.pem_key_cert_pairs.push_back({m.key, m.cert});
  return grpc::SslServerCredentials(opts);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> DialMutualTls(
    const gwmirror::v1::TlsConfig& tls, const std::string& address,
    const std::string& server_name) {
  ASSIGN_OR_RETURN(Material m, LoadMaterial(tls));
  grpc::SslCredentialsOptions opts;
  opts.pem_root_certs = m.ca;
  opts.pem_private_key = m.key;
  opts.pem_cert_chain = m.cert;
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(server_name);
  args.SetMaxReceiveMessageSize(8 << 20);
  args.SetMaxSendMessageSize(8 << 20);
  // Peers restart (a replica after a crash, the coordinator after an
  // upgrade): reconnect within a couple of seconds rather than gRPC's
  // default backoff of up to two minutes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(opts), args);
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(
    grpc::ServerBuilder& builder, const gwmirror::v1::TlsConfig& tls,
    const std::string& listen, const std::string& port_file, int* port) {
  ASSIGN_OR_RETURN(auto creds, MakeServerCredentials(tls));
  *port = 0;
  builder.AddListeningPort(listen, creds, port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || *port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen));
  }
  if (!port_file.empty()) {
    RETURN_IF_ERROR(
        WriteFileAtomic(port_file, absl::StrCat(*port, "\n"), 0644));
  }
  return server;
}

std::string PeerIdentity(const grpc::ServerContext& ctx) {
  auto auth = ctx.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return "";
  auto cn = auth->FindPropertyValues("x509_common_name");
  if (cn.empty()) return "";
  return std::string(cn.front().data(), cn.front().size());
}

}  // namespace gwmirror
