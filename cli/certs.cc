// gwmirror certs: the cluster's certificate authority on the operator's
// machine (keep DIR/ca/ca.key offline; only ca.pem goes to the hosts).
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "common/config.h"
#include "common/fd.h"
#include "common/status_macros.h"
#include "common/tls.h"

namespace gwmirror {
namespace {

std::string Utc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M UTC", t, absl::UTCTimeZone());
}

absl::StatusOr<int> Days(const Args& a, int fallback) {
  ASSIGN_OR_RETURN(uint64_t days, a.UintOr("days", fallback));
  if (days == 0 || days > 36500) {
    return absl::InvalidArgumentError("--days must be within 1..36500");
  }
  return static_cast<int>(days);
}

absl::Status Init(const std::string& dir, const Args& a) {
  const std::string ca = dir + "/ca";
  if (access((ca + "/ca.key").c_str(), F_OK) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(
        "a CA already exists in ", ca,
        "; replacing it would make every certificate it issued untrusted "
        "(remove the directory yourself if that is what you want)"));
  }
  ASSIGN_OR_RETURN(int days, Days(a, 3650));
  RETURN_IF_ERROR(
      CreateCa(ca, a.Get("name").value_or("gwmirror cluster CA"), days));
  std::cout << "CA created: " << ca << "/ca.pem (copy it to every host), " << ca
            << "/ca.key (keep it off the hosts)\n";
  return absl::OkStatus();
}

absl::Status Issue(const std::string& dir, const Args& a) {
  ASSIGN_OR_RETURN(std::string name, a.Require("name"));
  IssueOptions o;
  ASSIGN_OR_RETURN(o.days, Days(a, 825));
  o.role = a.Get("role").value_or("");
  static const char* const kRoles[] = {"", "operator", "viewer", "node",
                                       "coordinator"};
  if (std::find(std::begin(kRoles), std::end(kRoles), o.role) ==
      std::end(kRoles)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--role \"", o.role,
                     "\" is none of operator, viewer, node, coordinator"));
  }
  if (auto hosts = a.Get("host")) {
    o.hosts = absl::StrSplit(*hosts, ',', absl::SkipEmpty());
  }
  const std::string out = a.Get("out").value_or(dir + "/certs");
  const std::string pem = absl::StrCat(out, "/", name, ".pem");
  if (access(pem.c_str(), F_OK) == 0 && !a.Has("renew")) {
    return absl::AlreadyExistsError(
        absl::StrCat(pem, " exists; pass --renew to replace it (and its key)"));
  }
  ASSIGN_OR_RETURN(gwmirror::v1::TlsConfig tls,
                   IssueCertificate(dir + "/ca", name, out, o));
  // Proves the new files are what a node will accept.
  ASSIGN_OR_RETURN(CertificateInfo info, CheckTlsMaterial(tls, absl::Now()));
  if (a.Has("json")) {
    std::cout << ToJson(tls);
    return absl::OkStatus();
  }
  std::cout << absl::StrFormat(
      "issued %s: %s and %s (0600), valid until %s, names %s\n"
      "its config's \"tls\" section:\n%s",
      info.subject, tls.cert_file(), tls.key_file(), Utc(info.not_after),
      absl::StrJoin(info.hosts, ", "), ToJson(tls));
  if (o.role == "operator" || o.role == "viewer") {
    std::cout << absl::StrFormat(
        "add \"%s\" to \"%s_identities\" in the coordinator's config (and, "
        "for an operator who may act on nodes without the coordinator, to "
        "each node's replica.controller_identities)\n",
        name, o.role);
  }
  return absl::OkStatus();
}

absl::Status List(const std::string& dir, const Args& a) {
  const std::string ca = dir + "/ca/ca.pem";
  ASSIGN_OR_RETURN(std::string ca_pem, ReadFileToString(ca));
  ASSIGN_OR_RETURN(CertificateInfo ca_info, InspectCertificate(ca_pem, ca));
  const std::string certs = a.Get("out").value_or(dir + "/certs");
  std::vector<std::string> names;
  if (DIR* d = opendir(certs.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 4 && n.substr(n.size() - 4) == ".pem") {
        names.push_back(n.substr(0, n.size() - 4));
      }
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  const absl::Time now = absl::Now();
  auto days_left = [&](absl::Time t) {
    return static_cast<int64_t>(absl::ToDoubleHours(t - now) / 24);
  };
  std::cout << absl::StrFormat("CA \"%s\": %s, valid until %s (%d days)\n",
                               ca_info.subject, ca, Utc(ca_info.not_after),
                               days_left(ca_info.not_after));
  int bad = 0;
  for (const std::string& name : names) {
    gwmirror::v1::TlsConfig tls;
    tls.set_ca_file(ca);
    tls.set_cert_file(absl::StrCat(certs, "/", name, ".pem"));
    tls.set_key_file(absl::StrCat(certs, "/", name, ".key"));
    ASSIGN_OR_RETURN(std::string pem, ReadFileToString(tls.cert_file()));
    ASSIGN_OR_RETURN(CertificateInfo info,
                     InspectCertificate(pem, tls.cert_file()));
    absl::StatusOr<CertificateInfo> checked = CheckTlsMaterial(tls, now);
    std::string verdict = "ok";
    if (!checked.ok()) {
      verdict = absl::StrCat("REFUSED: ", checked.status().message());
      ++bad;
    } else if (days_left(info.not_after) < kCertificateWarningDays) {
      verdict = "EXPIRES SOON: renew with `gwmirror certs issue --renew`";
    }
    std::cout << absl::StrFormat("%-24s until %s (%5d days)  %s  [%s]\n",
                                 info.subject, Utc(info.not_after),
                                 days_left(info.not_after), verdict,
                                 absl::StrJoin(info.hosts, ", "));
  }
  if (bad > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        bad, " certificate(s) in ", certs, " would be refused by a node"));
  }
  return absl::OkStatus();
}

// gwmirror certs rotate-ca start|renew|finish: a new CA beside the old,
// every certificate renewed from it, the old one retired (OPERATIONS.md).
absl::Status RotateCa(const std::string& dir, const Args& a) {
  const std::string step = a.positional().empty() ? "" : a.positional().front();
  const std::string ca = dir + "/ca";
  const std::string certs = a.Get("out").value_or(dir + "/certs");
  if (step == "start") {
    ASSIGN_OR_RETURN(int days, Days(a, 3650));
    RETURN_IF_ERROR(BeginCaRotation(
        ca,
        a.Get("name").value_or(absl::StrCat(
            "gwmirror cluster CA ",
            absl::FormatTime("%Y-%m-%d", absl::Now(), absl::UTCTimeZone()))),
        days));
    std::cout << "new CA created; " << ca
              << "/ca.pem now holds the old and the new CA: copy it to every "
                 "host (each process takes it on SIGHUP, or within 10 s), "
                 "then `gwmirror certs rotate-ca renew`\n";
    return absl::OkStatus();
  }
  if (step == "renew") {
    ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(certs));
    int renewed = 0;
    for (const std::string& n : names) {
      if (!absl::EndsWith(n, ".pem")) continue;
      const std::string path = certs + "/" + n;
      ASSIGN_OR_RETURN(std::string pem, ReadFileToString(path));
      ASSIGN_OR_RETURN(bool current, IssuedByCurrentCa(ca, pem));
      if (current) continue;
      ASSIGN_OR_RETURN(CertificateInfo info, InspectCertificate(pem, path));
      IssueOptions o;
      ASSIGN_OR_RETURN(o.days, Days(a, 825));
      o.role = info.role;
      // The names beyond the ones every certificate gets.
      for (const std::string& h : info.hosts) {
        if (h != info.subject && h != "localhost" && h != "127.0.0.1") {
          o.hosts.push_back(h);
        }
      }
      RETURN_IF_ERROR(IssueCertificate(ca, info.subject, certs, o).status());
      std::cout << "renewed " << info.subject << " from the new CA\n";
      ++renewed;
    }
    std::cout << renewed
              << " certificate(s) renewed: copy them to their hosts (each "
                 "process takes its own on SIGHUP, or within 10 s), then "
                 "`gwmirror certs rotate-ca finish`\n";
    return absl::OkStatus();
  }
  if (step == "finish") {
    RETURN_IF_ERROR(FinishCaRotation(ca, certs));
    std::cout << "old CA retired: " << ca
              << "/ca.pem holds only the new CA; copy it to every host\n";
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "certs rotate-ca needs a step: start, renew or finish (got \"", step,
      "\")"));
}

}  // namespace

absl::Status CertsCommand(const std::string& sub, const Args& a) {
  ASSIGN_OR_RETURN(std::string dir, a.Require("dir"));
  if (sub == "init") return Init(dir, a);
  if (sub == "issue") return Issue(dir, a);
  if (sub == "list") return List(dir, a);
  if (sub == "rotate-ca") return RotateCa(dir, a);
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown certs command \"", sub, "\" (init, issue, list, rotate-ca)"));
}

}  // namespace gwmirror
