#include "common/tls.h"

#include <arpa/inet.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <map>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/fd.h"
#include "common/log.h"
#include "common/metrics.h"
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

bool IsIpAddress(const std::string& h) {
  unsigned char buf[16];
  return inet_pton(AF_INET, h.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

// A host name for a subjectAltName: letters, digits, '-', '.', a leading
// "*." wildcard; or an IP address.
absl::Status ValidateHost(const std::string& h) {
  if (IsIpAddress(h)) return absl::OkStatus();
  bool ok = !h.empty() && h.size() <= 253;
  for (size_t i = 0; ok && i < h.size(); ++i) {
    char c = h[i];
    ok = absl::ascii_isalnum(c) || c == '-' || c == '.' ||
         (c == '*' && i == 0 && h.size() > 2 && h[1] == '.');
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("host \"", h, "\" is neither a DNS name nor an IP address"));
}

absl::StatusOr<X509Ptr> NewCert(const std::string& cn, EVP_PKEY* subject_key,
                                X509* issuer, EVP_PKEY* issuer_key, int days,
                                bool is_ca, const IssueOptions& options = {}) {
  X509Ptr cert(X509_new());
  if (!cert) return SslError("X509_new");
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(
      BN_bin2bn(serial, sizeof serial, nullptr), BN_free);
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()));
  absl::Time from = options.not_before == absl::InfinitePast()
                        ? absl::Now() - absl::Hours(1)
                        : options.not_before;
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), absl::ToTimeT(from));
  ASN1_TIME_set(X509_getm_notAfter(cert.get()),
                absl::ToTimeT(from + absl::Hours(24) * days));
  X509_set_pubkey(cert.get(), subject_key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("gwmirror"),
                             -1, -1, 0);
  if (!options.role.empty()) {
    X509_NAME_add_entry_by_txt(
        name, "OU", MBSTRING_ASC,
        reinterpret_cast<const unsigned char*>(options.role.c_str()), -1, -1,
        0);
  }
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
    for (const std::string& h : options.hosts) {
      absl::StrAppend(&san, ",", IsIpAddress(h) ? "IP:" : "DNS:", h);
    }
    RETURN_IF_ERROR(AddExt(cert.get(), iss, NID_subject_alt_name, san.c_str()));
  }
  RETURN_IF_ERROR(AddExt(cert.get(), iss, NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) {
    return SslError("sign certificate");
  }
  return cert;
}

absl::StatusOr<X509Ptr> ParseCert(absl::string_view pem,
                                  const std::string& what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not a PEM certificate"));
  }
  return cert;
}

absl::StatusOr<PkeyPtr> ParseKey(absl::string_view pem,
                                 const std::string& what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not a PEM private key"));
  }
  return key;
}

// Every certificate of a PEM bundle (a CA file may hold the old and the
// new CA while one is rotated); INVALID_ARGUMENT when it holds none.
absl::StatusOr<std::vector<X509Ptr>> ParseCertBundle(absl::string_view pem,
                                                     const std::string& what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<X509Ptr> out;
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    out.emplace_back(c);
  }
  ERR_clear_error();  // The end of the bundle reads as an error.
  if (out.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not a PEM certificate"));
  }
  return out;
}

using StorePtr = std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)>;
using StoreCtxPtr =
    std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)>;

// Verifies `cert` against the CAs at `at`: 0 when it chains to one, else
// OpenSSL's verification error (-1 when verification could not start).
int VerifyChain(X509* cert, const std::vector<X509Ptr>& cas, absl::Time at) {
  StorePtr store(X509_STORE_new(), X509_STORE_free);
  StoreCtxPtr ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  if (!store || !ctx) return -1;
  for (const X509Ptr& ca : cas) {
    if (X509_STORE_add_cert(store.get(), ca.get()) != 1) return -1;
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert, nullptr) != 1) {
    return -1;
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, absl::ToTimeT(at));
  if (X509_verify_cert(ctx.get()) == 1) return 0;
  int err = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  return err == 0 ? -1 : err;
}

absl::StatusOr<PkeyPtr> ReadKey(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadFileToString(path));
  return ParseKey(pem, path);
}

std::string CommonName(X509_NAME* name) {
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return "";
  ASN1_STRING* d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(d)),
                     ASN1_STRING_length(d));
}

absl::Time TimeOf(const ASN1_TIME* t) {
  struct tm tm = {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return absl::InfinitePast();
  return absl::FromTimeT(timegm(&tm));
}

std::string Utc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone());
}

CertificateInfo Inspect(X509* cert) {
  CertificateInfo info;
  info.subject = CommonName(X509_get_subject_name(cert));
  {
    X509_NAME* name = X509_get_subject_name(cert);
    int i = X509_NAME_get_index_by_NID(name, NID_organizationalUnitName, -1);
    if (i >= 0) {
      ASN1_STRING* d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
      info.role.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(d)),
                       ASN1_STRING_length(d));
    }
  }
  info.issuer = CommonName(X509_get_issuer_name(cert));
  info.not_before = TimeOf(X509_get0_notBefore(cert));
  info.not_after = TimeOf(X509_get0_notAfter(cert));
  info.is_ca = X509_check_ca(cert) != 0;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type == GEN_DNS) {
      info.hosts.emplace_back(
          reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)),
          ASN1_STRING_length(n->d.dNSName));
    } else if (n->type == GEN_IPADD) {
      char buf[64] = {};
      int len = ASN1_STRING_length(n->d.iPAddress);
      const unsigned char* p = ASN1_STRING_get0_data(n->d.iPAddress);
      if ((len == 4 || len == 16) &&
          inet_ntop(len == 4 ? AF_INET : AF_INET6, p, buf, sizeof buf)) {
        info.hosts.emplace_back(buf);
      }
    }
  }
  GENERAL_NAMES_free(names);
  return info;
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

namespace {

// The certificate of ca.pem (a bundle while a CA is rotated) that ca.key
// belongs to.
absl::StatusOr<X509Ptr> IssuingCa(const std::string& ca_dir) {
  ASSIGN_OR_RETURN(std::string pem, ReadFileToString(ca_dir + "/ca.pem"));
  ASSIGN_OR_RETURN(std::vector<X509Ptr> cas,
                   ParseCertBundle(pem, ca_dir + "/ca.pem"));
  ASSIGN_OR_RETURN(PkeyPtr key, ReadKey(ca_dir + "/ca.key"));
  for (X509Ptr& c : cas) {
    if (X509_check_private_key(c.get(), key.get()) == 1) return std::move(c);
  }
  ERR_clear_error();
  return absl::FailedPreconditionError(absl::StrCat(
      ca_dir, "/ca.key belongs to no certificate of ", ca_dir, "/ca.pem"));
}

}  // namespace

absl::Status BeginCaRotation(const std::string& ca_dir, const std::string& name,
                             int days) {
  if (access((ca_dir + "/ca.key.old").c_str(), F_OK) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("a CA rotation is already under way in ", ca_dir,
                     " (ca.key.old exists): finish it first"));
  }
  ASSIGN_OR_RETURN(X509Ptr old_ca, IssuingCa(ca_dir));
  ASSIGN_OR_RETURN(std::string old_key, ReadFileToString(ca_dir + "/ca.key"));
  ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  ASSIGN_OR_RETURN(X509Ptr cert,
                   NewCert(name, key.get(), nullptr, key.get(), days, true));
  // Trust first, then issue: the bundle holds both, the new key signs.
  RETURN_IF_ERROR(WriteFileAtomic(ca_dir + "/ca.key.old", old_key, 0600));
  RETURN_IF_ERROR(
      WriteFileAtomic(ca_dir + "/ca.pem",
                      PemOfCert(old_ca.get()) + PemOfCert(cert.get()), 0644));
  return WriteFileAtomic(ca_dir + "/ca.key", PemOfKey(key.get()), 0600);
}

absl::StatusOr<bool> IssuedByCurrentCa(const std::string& ca_dir,
                                       absl::string_view cert_pem) {
  ASSIGN_OR_RETURN(X509Ptr ca, IssuingCa(ca_dir));
  ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(cert_pem, "certificate"));
  std::vector<X509Ptr> only;
  only.push_back(std::move(ca));
  // Validity is not the question here, only the issuer.
  CertificateInfo info = Inspect(cert.get());
  return VerifyChain(cert.get(), only, info.not_before + absl::Seconds(1)) == 0;
}

absl::Status FinishCaRotation(const std::string& ca_dir,
                              const std::string& certs_dir) {
  if (access((ca_dir + "/ca.key.old").c_str(), F_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("no CA rotation is under way in ", ca_dir));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(certs_dir));
  for (const std::string& n : names) {
    if (!absl::EndsWith(n, ".pem")) continue;
    ASSIGN_OR_RETURN(std::string pem, ReadFileToString(certs_dir + "/" + n));
    ASSIGN_OR_RETURN(bool current, IssuedByCurrentCa(ca_dir, pem));
    if (!current) {
      return absl::FailedPreconditionError(absl::StrCat(
          certs_dir, "/", n,
          " is still from the old CA: renew it first (`gwmirror certs "
          "rotate-ca renew`), or the process using it is refused once the "
          "old CA is retired"));
    }
  }
  ASSIGN_OR_RETURN(X509Ptr ca, IssuingCa(ca_dir));
  RETURN_IF_ERROR(
      WriteFileAtomic(ca_dir + "/ca.pem", PemOfCert(ca.get()), 0644));
  if (unlink((ca_dir + "/ca.key.old").c_str()) != 0) {
    return ErrnoStatus(errno, "remove ca.key.old");
  }
  return absl::OkStatus();
}

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
    const std::string& out_dir, const IssueOptions& options) {
  if (!ValidateHost(name).ok() || IsIpAddress(name) || name[0] == '*') {
    return absl::InvalidArgumentError(absl::StrCat(
        "certificate name \"", name,
        "\" must be a DNS-style name (letters, digits, '-', '.')"));
  }
  ASSIGN_OR_RETURN(X509Ptr ca, IssuingCa(ca_dir));
  ASSIGN_OR_RETURN(PkeyPtr ca_key, ReadKey(ca_dir + "/ca.key"));
  ASSIGN_OR_RETURN(PkeyPtr key, NewKey());
  for (const std::string& h : options.hosts) RETURN_IF_ERROR(ValidateHost(h));
  ASSIGN_OR_RETURN(X509Ptr cert,
                   NewCert(name, key.get(), ca.get(), ca_key.get(),
                           options.days, false, options));
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

absl::StatusOr<CertificateInfo> InspectCertificate(absl::string_view pem,
                                                   const std::string& what) {
  ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(pem, what));
  return Inspect(cert.get());
}

namespace {

// CheckTlsMaterial of material already read.
absl::StatusOr<CertificateInfo> CheckMaterial(
    const Material& m, const gwmirror::v1::TlsConfig& tls, absl::Time now) {
  ASSIGN_OR_RETURN(std::vector<X509Ptr> cas,
                   ParseCertBundle(m.ca, tls.ca_file()));
  ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(m.cert, tls.cert_file()));
  ASSIGN_OR_RETURN(PkeyPtr key, ParseKey(m.key, tls.key_file()));
  CertificateInfo info = Inspect(cert.get());
  auto refuse = [](auto&&... parts) {
    return absl::FailedPreconditionError(absl::StrCat(parts...));
  };
  // Every certificate of the bundle must be a CA (a leaf there would be
  // trusted as one), and at least one must still be valid.
  std::vector<std::string> names;
  bool any_valid = false;
  for (const X509Ptr& ca : cas) {
    CertificateInfo ca_info = Inspect(ca.get());
    if (!ca_info.is_ca) {
      return refuse("the cluster CA file ", tls.ca_file(), " (\"",
                    ca_info.subject, "\") is not a CA certificate");
    }
    names.push_back(ca_info.subject);
    if (now <= ca_info.not_after) any_valid = true;
  }
  if (!any_valid) {
    return refuse("the cluster CA ", tls.ca_file(), " expired on ",
                  Utc(Inspect(cas.back().get()).not_after));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return refuse("key ", tls.key_file(), " does not match certificate ",
                  tls.cert_file());
  }
  if (now > info.not_after) {
    return refuse("certificate ", tls.cert_file(), " (\"", info.subject,
                  "\") expired on ", Utc(info.not_after),
                  "; issue a new one with `gwmirror certs issue --name ",
                  info.subject, "`");
  }
  if (now < info.not_before) {
    return refuse("certificate ", tls.cert_file(), " (\"", info.subject,
                  "\") is not valid before ", Utc(info.not_before),
                  " (this host's clock says ", Utc(now), ")");
  }
  int err = VerifyChain(cert.get(), cas, now);
  if (err < 0) return SslError("set up certificate verification");
  if (err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
      err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
      err == X509_V_ERR_CERT_SIGNATURE_FAILURE ||
      err == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT) {
    return refuse("certificate ", tls.cert_file(), " (\"", info.subject,
                  "\", issued by \"", info.issuer,
                  "\") is not issued by the cluster CA in ", tls.ca_file(),
                  " (\"", absl::StrJoin(names, "\", \""), "\")");
  }
  if (err != 0) {
    return refuse("certificate ", tls.cert_file(), " (\"", info.subject,
                  "\") does not verify against ", tls.ca_file(), ": ",
                  X509_verify_cert_error_string(err));
  }
  return info;
}

}  // namespace

absl::StatusOr<CertificateInfo> CheckTlsMaterial(
    const gwmirror::v1::TlsConfig& tls, absl::Time now) {
  ASSIGN_OR_RETURN(Material m, LoadMaterial(tls));
  return CheckMaterial(m, tls, now);
}

absl::StatusOr<std::string> SignWithKey(const std::string& key_file,
                                        absl::string_view data) {
  ASSIGN_OR_RETURN(PkeyPtr key, ReadKey(key_file));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                              EVP_MD_CTX_free);
  size_t len = 0;
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                         key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len,
                     reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1) {
    return SslError(absl::StrCat("sign with ", key_file));
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()),
                     &len, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1) {
    return SslError(absl::StrCat("sign with ", key_file));
  }
  sig.resize(len);
  return sig;
}

absl::StatusOr<CertificateInfo> VerifySignedBy(absl::string_view cert_pem,
                                               const std::string& ca_file,
                                               absl::Time at,
                                               absl::string_view data,
                                               absl::string_view signature) {
  auto deny = [](auto&&... parts) {
    return absl::PermissionDeniedError(absl::StrCat(parts...));
  };
  ASSIGN_OR_RETURN(std::string ca_pem, ReadFileToString(ca_file));
  ASSIGN_OR_RETURN(std::vector<X509Ptr> cas, ParseCertBundle(ca_pem, ca_file));
  auto cert = ParseCert(cert_pem, "the signer's certificate");
  if (!cert.ok()) return deny(cert.status().message());
  CertificateInfo info = Inspect(cert->get());
  if (int err = VerifyChain(cert->get(), cas, at); err != 0) {
    return deny(
        "the signer's certificate (\"", info.subject,
        "\") does not verify against the cluster CA at ", Utc(at), ": ",
        err < 0 ? "verification failed" : X509_verify_cert_error_string(err));
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                              EVP_MD_CTX_free);
  bool ok =
      ctx &&
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                           X509_get0_pubkey(cert->get())) == 1 &&
      EVP_DigestVerify(
          ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
          signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
          data.size()) == 1;
  ERR_clear_error();
  if (!ok) {
    return deny("the signature does not verify with the key of \"",
                info.subject, "\"");
  }
  return info;
}

void RecordCertificateExpiry(const CertificateInfo& info) {
  DefaultMetrics()
      .Gauge("gwmirror_certificate_expiry_timestamp_seconds",
             "Unix time at which each certificate stops being valid.",
             {"identity"})
      .Set(absl::ToDoubleSeconds(info.not_after - absl::UnixEpoch()),
           {info.subject});
}

// ------------------------------------------------------------ TlsReloader

namespace {

// Reloaders by the cert_file they were started for: DialMutualTls and
// MakeServerCredentials of the same material use them.
absl::Mutex g_reloaders_mu;
std::map<std::string, TlsReloader*>& Reloaders()
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_reloaders_mu) {
  static auto* const kMap = new std::map<std::string, TlsReloader*>;
  return *kMap;
}

TlsReloader* ReloaderFor(const gwmirror::v1::TlsConfig& tls) {
  absl::MutexLock l(&g_reloaders_mu);
  auto it = Reloaders().find(tls.cert_file());
  return it == Reloaders().end() ? nullptr : it->second;
}

}  // namespace

struct TlsReloader::State {
  gwmirror::v1::TlsConfig configured;
  gwmirror::v1::TlsConfig copies;
  std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> provider;
  std::function<void(const CertificateInfo&)> on_reload;
  absl::Mutex mu;
  Material current ABSL_GUARDED_BY(mu);
  bool stop ABSL_GUARDED_BY(mu) = false;
  std::thread poller;
};

TlsReloader::TlsReloader(gwmirror::v1::TlsConfig configured, std::string dir)
    : state_(std::make_unique<State>()) {
  state_->configured = std::move(configured);
  state_->copies.set_ca_file(dir + "/ca.pem");
  state_->copies.set_cert_file(dir + "/cert.pem");
  state_->copies.set_key_file(dir + "/key.pem");
}

absl::StatusOr<std::unique_ptr<TlsReloader>> TlsReloader::Start(
    const gwmirror::v1::TlsConfig& configured, std::string dir,
    std::function<void(const CertificateInfo&)> on_reload,
    absl::Duration poll) {
  RETURN_IF_ERROR(MakeDirs(dir, 0700));
  std::unique_ptr<TlsReloader> r(new TlsReloader(configured, std::move(dir)));
  State& s = *r->state_;
  s.on_reload = std::move(on_reload);
  ASSIGN_OR_RETURN(Material m, LoadMaterial(configured));
  ASSIGN_OR_RETURN(CertificateInfo info,
                   CheckMaterial(m, configured, absl::Now()));
  RecordCertificateExpiry(info);
  RETURN_IF_ERROR(WriteFileAtomic(s.copies.ca_file(), m.ca, 0600));
  RETURN_IF_ERROR(WriteFileAtomic(s.copies.key_file(), m.key, 0600));
  RETURN_IF_ERROR(WriteFileAtomic(s.copies.cert_file(), m.cert, 0600));
  {
    absl::MutexLock l(&s.mu);
    s.current = std::move(m);
  }
  s.provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          s.copies.key_file(), s.copies.cert_file(), s.copies.ca_file(), 1);
  {
    absl::MutexLock l(&g_reloaders_mu);
    Reloaders()[configured.cert_file()] = r.get();
  }
  TlsReloader* self = r.get();
  s.poller = std::thread([self, poll] {
    State& st = *self->state_;
    for (;;) {
      {
        absl::MutexLock l(&st.mu);
        auto stopping = [&st]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu) {
          return st.stop;
        };
        if (st.mu.AwaitWithTimeout(absl::Condition(&stopping), poll)) return;
      }
      (void)self->Reload();
    }
  });
  return r;
}

TlsReloader::~TlsReloader() {
  {
    absl::MutexLock l(&g_reloaders_mu);
    auto it = Reloaders().find(state_->configured.cert_file());
    if (it != Reloaders().end() && it->second == this) Reloaders().erase(it);
  }
  {
    absl::MutexLock l(&state_->mu);
    state_->stop = true;
  }
  if (state_->poller.joinable()) state_->poller.join();
}

absl::Status TlsReloader::Reload() {
  State& s = *state_;
  absl::MutexLock l(&s.mu);
  auto m = LoadMaterial(s.configured);
  absl::Status st = m.status();
  if (st.ok() && m->ca == s.current.ca && m->cert == s.current.cert &&
      m->key == s.current.key) {
    return absl::OkStatus();
  }
  absl::StatusOr<CertificateInfo> info =
      st.ok() ? CheckMaterial(*m, s.configured, absl::Now())
              : absl::StatusOr<CertificateInfo>(st);
  if (!info.ok()) {
    Logf(LogLevel::kError, "tls",
         "renewed TLS material refused, the current one stays: %s",
         info.status().ToString());
    return info.status();
  }
  // The CA bundle first (a new CA is trusted before a certificate it
  // issued is shown), then key and certificate: gRPC's watcher takes a
  // key and certificate only once they match.
  for (auto [path, data] : {std::pair{s.copies.ca_file(), &m->ca},
                            {s.copies.key_file(), &m->key},
                            {s.copies.cert_file(), &m->cert}}) {
    RETURN_IF_ERROR(WriteFileAtomic(path, *data, 0600));
  }
  s.current = *std::move(m);
  RecordCertificateExpiry(*info);
  Logf(LogLevel::kInfo, "tls",
       "TLS material reloaded: certificate \"%s\" issued by \"%s\", valid "
       "until %s",
       info->subject, info->issuer, Utc(info->not_after));
  if (s.on_reload) s.on_reload(*info);
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> TlsReloader::ServerCredentials()
    const {
  grpc::experimental::TlsServerCredentialsOptions opts(state_->provider);
  opts.watch_root_certs();
  opts.watch_identity_key_cert_pairs();
  opts.set_cert_request_type(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(opts);
}

std::shared_ptr<grpc::ChannelCredentials> TlsReloader::ChannelCredentials()
    const {
  grpc::experimental::TlsChannelCredentialsOptions opts;
  opts.set_certificate_provider(state_->provider);
  opts.watch_root_certs();
  opts.watch_identity_key_cert_pairs();
  opts.set_verify_server_certs(true);
  return grpc::experimental::TlsCredentials(opts);
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const gwmirror::v1::TlsConfig& tls) {
  if (TlsReloader* r = ReloaderFor(tls)) return r->ServerCredentials();
  ASSIGN_OR_RETURN(Material m, LoadMaterial(tls));
  ASSIGN_OR_RETURN(CertificateInfo info, CheckMaterial(m, tls, absl::Now()));
  RecordCertificateExpiry(info);
  grpc::SslServerCredentialsOptions opts(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  opts.pem_root_certs = m.ca;
  opts.pem_key_cert_pairs.push_back({m.key, m.cert});
  return grpc::SslServerCredentials(opts);
}

void PrepareGrpc() {
  setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "500", /*overwrite=*/0);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> DialMutualTls(
    const gwmirror::v1::TlsConfig& tls, const std::string& address,
    const std::string& server_name) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (TlsReloader* r = ReloaderFor(tls)) {
    creds = r->ChannelCredentials();
  } else {
    ASSIGN_OR_RETURN(Material m, LoadMaterial(tls));
    RETURN_IF_ERROR(CheckMaterial(m, tls, absl::Now()).status());
    grpc::SslCredentialsOptions opts;
    opts.pem_root_certs = m.ca;
    opts.pem_private_key = m.key;
    opts.pem_cert_chain = m.cert;
    creds = grpc::SslCredentials(opts);
  }
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(server_name);
  args.SetMaxReceiveMessageSize(8 << 20);
  args.SetMaxSendMessageSize(8 << 20);
  // Peers restart (a replica after a crash, the coordinator after an
  // upgrade): reconnect within a couple of seconds rather than gRPC's
  // default backoff of up to two minutes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // gRPC takes this as the least time a connection attempt is given: TCP,
  // TLS and HTTP/2's first frames over a long, lossy link (four round
  // trips of 80 ms, and a lost SYN costs a second) need more than the
  // backoff above would allow.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
  // A link that died sends no RST: pings find it within kKeepalive +
  // kKeepaliveTimeout (10-15 s), idle or not, and calls fail over to a
  // reconnect instead of hanging on TCP's retransmissions.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return grpc::CreateCustomChannel(address, creds, args);
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(
    grpc::ServerBuilder& builder, const gwmirror::v1::TlsConfig& tls,
    const std::string& listen, const std::string& port_file, int* port,
    const std::vector<std::string>& services) {
  ASSIGN_OR_RETURN(auto creds, MakeServerCredentials(tls));
  *port = 0;
  builder.AddListeningPort(listen, creds, port);
  // What one peer can make the server hold before any handler (and so any
  // permission check) runs: metadata is parsed into memory first, so it
  // is bounded tightly (our calls send none beyond gRPC's own); streams per
  // connection and the process's gRPC memory and threads are bounded too.
  // Per-identity limits come after, in CallGate.
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, kMaxMetadataBytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 64);
  // A peer behind a link that died sends no RST: ping it, so a push from
  // a source that went away ends (and frees the replica's push slot)
  // within kKeepalive + kKeepaliveTimeout, not TCP's two hours. Peers'
  // own pings are welcome as often as they send them.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             kKeepaliveTimeoutMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, kKeepaliveMs / 2);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  grpc::ResourceQuota quota("gwmirror-server");
  quota.Resize(512 << 20);
  quota.SetMaxThreads(128);
  builder.SetResourceQuota(quota);
  grpc::EnableDefaultHealthCheckService(true);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || *port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen));
  }
  if (auto* health = server->GetHealthCheckService()) {
    health->SetServingStatus("", true);
    for (const std::string& s : services) health->SetServingStatus(s, true);
  }
  if (!port_file.empty()) {
    RETURN_IF_ERROR(
        WriteFileAtomic(port_file, absl::StrCat(*port, "\n"), 0644));
  }
  return server;
}

void StopServer(grpc::Server* server) {
  if (auto* health = server->GetHealthCheckService()) {
    health->SetServingStatus(false);
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

std::string PeerIdentity(const grpc::ServerContext& ctx) {
  auto auth = ctx.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return "";
  auto cn = auth->FindPropertyValues("x509_common_name");
  if (cn.empty()) return "";
  return std::string(cn.front().data(), cn.front().size());
}

absl::StatusOr<CertificateInfo> PeerCertificate(
    const grpc::ServerContext& ctx) {
  auto auth = ctx.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) {
    return absl::UnauthenticatedError("the peer presented no certificate");
  }
  auto pem = auth->FindPropertyValues("x509_pem_cert");
  if (pem.empty()) {
    return absl::UnauthenticatedError("the peer presented no certificate");
  }
  return InspectCertificate(
      absl::string_view(pem.front().data(), pem.front().size()),
      "the peer's certificate");
}

}  // namespace gwmirror
