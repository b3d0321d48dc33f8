#include "common/tar.h"

#include <cstring>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

constexpr size_t kBlock = 512;
// Largest pax record block accepted (a global comment holds a manifest).
constexpr uint64_t kMaxPax = 256ull << 20;

// One "len key=value\n" record; len counts itself.
std::string PaxRecord(absl::string_view key, absl::string_view value) {
  size_t body = 1 + key.size() + 1 + value.size() + 1;  // ' ' k '=' v '\n'
  size_t len = body + 1;
  while (absl::StrCat(len).size() + body != len) {
    len = absl::StrCat(len).size() + body;
  }
  return absl::StrCat(len, " ", key, "=", value, "\n");
}

void PutOctal(char* field, size_t width, uint64_t v) {
  // width-1 digits and a NUL; a value too large is left 0 (pax carries it).
  std::string s = absl::StrFormat("%0*o", int(width - 1), v);
  if (s.size() > width - 1) s.assign(width - 1, '0');
  memcpy(field, s.data(), s.size());
}

std::string Ustar(absl::string_view name, char type, uint32_t mode,
                  uint32_t uid, uint32_t gid, uint64_t size, int64_t mtime_s,
                  absl::string_view link) {
  char h[kBlock];
  memset(h, 0, sizeof h);
  memcpy(h, name.data(), std::min<size_t>(name.size(), 100));
  PutOctal(h + 100, 8, mode & 07777);
  PutOctal(h + 108, 8, uid);
  PutOctal(h + 116, 8, gid);
  PutOctal(h + 124, 12, size);
  PutOctal(h + 136, 12, mtime_s < 0 ? 0 : mtime_s);
  h[156] = type;
  memcpy(h + 157, link.data(), std::min<size_t>(link.size(), 100));
  memcpy(h + 257,
         "ustar\0"
         "00",
         8);
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::string chk = absl::StrFormat("%06o", sum);
  memcpy(h + 148, chk.data(), 6);
  h[154] = '\0';
  h[155] = ' ';
  return std::string(h, sizeof h);
}

std::string PaxBlock(char type, absl::string_view records) {
  return absl::StrCat(Ustar(type == 'g' ? "pax_global_header" : "PaxHeader",
                            type, 0644, 0, 0, records.size(), 0, ""),
                      records, TarPadding(records.size()));
}

uint64_t ParseOctal(const char* p, size_t n, bool* ok) {
  uint64_t v = 0;
  size_t i = 0;
  while (i < n && p[i] == ' ') ++i;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; ++i) {
    if (v >> 60) {
      *ok = false;
      return 0;
    }
    v = v * 8 + (p[i] - '0');
  }
  for (; i < n; ++i) {
    if (p[i] != '\0' && p[i] != ' ') *ok = false;
  }
  return v;
}

}  // namespace

std::string TarPadding(uint64_t size) {
  return std::string((kBlock - size % kBlock) % kBlock, '\0');
}

std::string TarEnd() { return std::string(2 * kBlock, '\0'); }

std::string TarGlobalComment(absl::string_view comment) {
  return PaxBlock('g', PaxRecord("comment", comment));
}

std::string TarHeader(const TarMember& m) {
  std::string path = m.path;
  if (m.type == TarMember::kDirectory) path += "/";
  const int64_t sec = m.mtime_ns >= 0 ? m.mtime_ns / 1000000000 : 0;
  const int64_t nsec = m.mtime_ns >= 0 ? m.mtime_ns % 1000000000 : 0;
  std::string rec = PaxRecord("path", path);
  absl::StrAppend(&rec,
                  PaxRecord("mtime", absl::StrFormat("%d.%09d", sec, nsec)));
  if (m.uid > 07777777)
    absl::StrAppend(&rec, PaxRecord("uid", absl::StrCat(m.uid)));
  if (m.gid > 07777777)
    absl::StrAppend(&rec, PaxRecord("gid", absl::StrCat(m.gid)));
  const uint64_t size = m.type == TarMember::kFile ? m.size : 0;
  if (size > 077777777777ull) {
    absl::StrAppend(&rec, PaxRecord("size", absl::StrCat(size)));
  }
  if (m.link_target.size() >= 100) {
    absl::StrAppend(&rec, PaxRecord("linkpath", m.link_target));
  }
  return absl::StrCat(
      PaxBlock('x', rec),
      Ustar(path, m.type, m.mode, m.uid, m.gid, size, sec, m.link_target));
}

absl::Status TarReader::ReadExact(char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ASSIGN_OR_RETURN(size_t k, read_(buf + got, n - got));
    if (k == 0) {
      return absl::InvalidArgumentError(
          "archive ends in the middle of a member (truncated)");
    }
    got += k;
  }
  return absl::OkStatus();
}

absl::Status TarReader::Skip(uint64_t n) {
  char buf[64 * 1024];
  while (n > 0) {
    size_t k = std::min<uint64_t>(n, sizeof buf);
    RETURN_IF_ERROR(ReadExact(buf, k));
    n -= k;
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> TarReader::Next(TarMember* m) {
  RETURN_IF_ERROR(Skip(remaining_));
  remaining_ = content_ = 0;
  std::map<std::string, std::string> pax;
  for (;;) {
    char h[kBlock];
    RETURN_IF_ERROR(ReadExact(h, kBlock));
    bool zero = true;
    for (char c : h) zero &= c == '\0';
    if (zero) return false;  // End of archive.
    unsigned sum = 0;
    for (size_t i = 0; i < kBlock; ++i) {
      sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
    }
    bool ok = true;
    uint64_t want = ParseOctal(h + 148, 8, &ok);
    std::string name(h, strnlen(h, 100));
    if (!ok || want != sum) {
      return absl::InvalidArgumentError(
          absl::StrCat("tar header of \"", name,
                       "\" has a bad checksum: not a tar "
                       "archive, or a damaged one"));
    }
    if (memcmp(h + 257, "ustar", 5) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tar header of \"", name, "\" is not ustar/pax"));
    }
    uint64_t size = ParseOctal(h + 124, 12, &ok);
    const char type = h[156];
    if (type == 'x' || type == 'g') {
      if (!ok || size > kMaxPax) {
        return absl::InvalidArgumentError("pax header too large");
      }
      std::string rec(size, '\0');
      RETURN_IF_ERROR(ReadExact(rec.data(), size));
      RETURN_IF_ERROR(Skip(TarPadding(size).size()));
      size_t pos = 0;
      while (pos < rec.size()) {
        size_t sp = rec.find(' ', pos);
        uint64_t len = 0;
        if (sp == std::string::npos ||
            !absl::SimpleAtoi(absl::string_view(rec).substr(pos, sp - pos),
                              &len) ||
            len < sp - pos + 3 || len > rec.size() - pos ||
            rec[pos + len - 1] != '\n') {
          return absl::InvalidArgumentError("malformed pax record");
        }
        absl::string_view kv(rec.data() + sp + 1, pos + len - 1 - sp - 1);
        size_t eq = kv.find('=');
        if (eq == absl::string_view::npos) {
          return absl::InvalidArgumentError("malformed pax record");
        }
        std::string key(kv.substr(0, eq));
        std::string value(kv.substr(eq + 1));
        if (type == 'g') {
          if (key == "comment") comment_ = std::move(value);
        } else {
          pax[key] = std::move(value);
        }
        pos += len;
      }
      continue;
    }
    TarMember out;
    std::string prefix(h + 345, strnlen(h + 345, 155));
    out.path = prefix.empty() ? name : prefix + "/" + name;
    out.mode = ParseOctal(h + 100, 8, &ok) & 07777;
    out.uid = ParseOctal(h + 108, 8, &ok);
    out.gid = ParseOctal(h + 116, 8, &ok);
    int64_t mtime = ParseOctal(h + 136, 12, &ok);
    out.mtime_ns = mtime * 1000000000;
    out.link_target.assign(h + 157, strnlen(h + 157, 100));
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("tar header of \"", name, "\" has a bad number"));
    }
    auto num = [&](const char* key, auto* field) -> absl::Status {
      auto it = pax.find(key);
      if (it != pax.end() && !absl::SimpleAtoi(it->second, field)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pax ", key, " of \"", out.path, "\" is not a number"));
      }
      return absl::OkStatus();
    };
    if (auto it = pax.find("path"); it != pax.end()) out.path = it->second;
    if (auto it = pax.find("linkpath"); it != pax.end()) {
      out.link_target = it->second;
    }
    RETURN_IF_ERROR(num("uid", &out.uid));
    RETURN_IF_ERROR(num("gid", &out.gid));
    RETURN_IF_ERROR(num("size", &size));
    if (auto it = pax.find("mtime"); it != pax.end()) {
      absl::string_view v = it->second;
      size_t dot = v.find('.');
      int64_t sec = 0, nsec = 0;
      std::string frac(dot == absl::string_view::npos ? "" : v.substr(dot + 1));
      frac = frac.substr(0, 9);
      frac.append(9 - frac.size(), '0');
      if (!absl::SimpleAtoi(v.substr(0, dot), &sec) ||
          !absl::SimpleAtoi(frac, &nsec) || sec < 0 ||
          sec > INT64_MAX / 1000000000 - 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("pax mtime of \"", out.path, "\" is not a time"));
      }
      out.mtime_ns = sec * 1000000000 + nsec;
    }
    while (out.path.size() > 1 && out.path.back() == '/') out.path.pop_back();
    switch (type) {
      case '0':
      case '\0':
        out.type = TarMember::kFile;
        break;
      case '2':
        out.type = TarMember::kSymlink;
        size = 0;
        break;
      case '5':
        out.type = TarMember::kDirectory;
        size = 0;
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            "member \"", out.path, "\" has type '", std::string(1, type),
            "': only files, directories and symlinks are restored"));
    }
    out.size = size;
    content_ = size;
    remaining_ = size + TarPadding(size).size();
    *m = std::move(out);
    return true;
  }
}

absl::Status TarReader::ReadData(
    const std::function<absl::Status(absl::string_view)>& sink) {
  char buf[64 * 1024];
  while (content_ > 0) {
    size_t k = std::min<uint64_t>(content_, sizeof buf);
    RETURN_IF_ERROR(ReadExact(buf, k));
    content_ -= k;
    remaining_ -= k;
    RETURN_IF_ERROR(sink(absl::string_view(buf, k)));
  }
  return absl::OkStatus();
}

}  // namespace gwmirror
