// The replica's push path end to end below gRPC: the input is a sequence of
// length-prefixed PushMessage protobufs fed to a real ReplicaStore session
// (decode, chunk decoder, patcher, staging). Whatever the input, nothing is
// ever written outside the state directory and the committed tree's roots,
// and the committed checkpoint never changes (no Commit is sent). The
// committed tree holds r/a ("hello"), so copies and deltas from another
// path have something to name.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "common/chunk_codec.h"
#include "common/fd.h"
#include "gwmirror/v1/replica.pb.h"
#include "node/replica/store.h"
#include "tests/fuzz/fuzz.h"

namespace {

gwmirror::ReplicaStore* Store() {
  static gwmirror::ReplicaStore* s = [] {
    char tmpl[] = "/tmp/gwmirror-fuzz-XXXXXX";
    std::string dir = mkdtemp(tmpl);
    if (mkdir((dir + "/host").c_str(), 0755) != 0 ||
        mkdir((dir + "/host/r").c_str(), 0755) != 0) {
      abort();
    }
    if (!gwmirror::WriteFileAtomic(dir + "/host/r/a", "hello", 0644).ok()) {
      abort();
    }
    gwmirror::v1::NodeConfig c;
    c.set_slot("f");
    c.set_host_root(dir + "/host");
    c.set_state_dir(dir + "/state");
    c.add_roots()->set_path("r");
    auto st = gwmirror::ReplicaStore::Open(c);
    if (!st.ok()) abort();
    return st->release();
  }();
  return s;
}

std::string Frame(const gwmirror::v1::PushMessage& m) {
  std::string body = m.SerializeAsString();
  std::string out(2, '\0');
  out[0] = static_cast<char>(body.size() & 0xff);
  out[1] = static_cast<char>((body.size() >> 8) & 0xff);
  return out + body;
}

}  // namespace

std::vector<std::string> GwmFuzzSeeds() {
  gwmirror::v1::PushMessage begin, header, chunk, end, part, fin;
  begin.mutable_begin()->set_checkpoint(1);
  auto* e = header.mutable_file_header()->mutable_entry();
  e->set_path("r/a");
  e->set_type(gwmirror::v1::ENTRY_TYPE_FILE);
  e->set_size(5);
  e->set_sha256(gwmirror::DigestBytes(gwmirror::Sha256Of("hello")));
  header.mutable_file_header()->set_encoding(gwmirror::v1::ENCODING_WHOLE);
  chunk.mutable_file_chunk()->set_data("hello");
  end.mutable_file_end();
  *part.mutable_manifest_part()->add_entries() = *e;
  fin.mutable_end()->set_manifest_digest(std::string(32, 'd'));
  // A pre-stage push of the same file, then a checkpoint that names it as
  // pre-staged.
  gwmirror::v1::PushMessage pre_begin, pre_fin, pooled;
  pre_begin.mutable_begin()->set_prestage(true);
  pre_fin.mutable_end();
  pooled = header;
  pooled.mutable_file_header()->set_encoding(gwmirror::v1::ENCODING_PRESTAGED);
  // A copy of the committed r/a to r/b, and a delta against it.
  gwmirror::v1::PushMessage copy = header, other;
  copy.mutable_file_header()->mutable_entry()->set_path("r/b");
  copy.mutable_file_header()->set_encoding(gwmirror::v1::ENCODING_COPY);
  copy.mutable_file_header()->set_basis_path("r/a");
  copy.mutable_file_header()->set_basis_sha256(e->sha256());
  other = copy;
  other.mutable_file_header()->set_encoding(gwmirror::v1::ENCODING_DELTA);
  // The same file with its digest at the end.
  gwmirror::v1::PushMessage late = header, late_end;
  late.mutable_file_header()->mutable_entry()->clear_sha256();
  late.mutable_file_header()->set_digest_at_end(true);
  late_end.mutable_file_end()->set_sha256(e->sha256());
  gwmirror::v1::PushMessage copy_part;
  *copy_part.mutable_manifest_part()->add_entries() =
      copy.file_header().entry();
  return {
      Frame(begin) + Frame(copy) + Frame(end) + Frame(copy_part) + Frame(fin),
      Frame(begin) + Frame(other) + Frame(chunk) + Frame(end) +
          Frame(copy_part) + Frame(fin),
      Frame(begin) + Frame(header) + Frame(chunk) + Frame(end) + Frame(part) +
          Frame(fin),
      Frame(pre_begin) + Frame(header) + Frame(chunk) + Frame(end) +
          Frame(pre_fin),
      Frame(begin) + Frame(pooled) + Frame(end) + Frame(part) + Frame(fin),
      Frame(begin) + Frame(late) + Frame(chunk) + Frame(late_end) +
          Frame(part) + Frame(fin)};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gwmirror::ReplicaStore* store = Store();
  uint64_t committed = store->State().committed_checkpoint();
  absl::string_view in(reinterpret_cast<const char*>(data), size);
  std::unique_ptr<gwmirror::PushSession> session;
  gwmirror::ChunkDecoder dec;
  while (in.size() >= 2) {
    size_t n = static_cast<unsigned char>(in[0]) |
               (static_cast<unsigned char>(in[1]) << 8);
    in.remove_prefix(2);
    if (n > in.size()) break;
    gwmirror::v1::PushMessage m;
    if (!m.ParseFromArray(in.data(), static_cast<int>(n))) break;
    in.remove_prefix(n);
    absl::Status st;
    if (m.has_begin()) {
      if (session) break;
      auto s = store->BeginPush(m.begin());
      if (!s.ok()) break;
      session = *std::move(s);
    } else if (!session) {
      break;
    } else if (m.has_file_header()) {
      st = session->BeginFile(m.file_header());
    } else if (m.has_file_chunk()) {
      auto raw = dec.Decode(m.file_chunk().data(), m.file_chunk().raw_size());
      st = raw.ok() ? session->FileData(*raw) : raw.status();
    } else if (m.has_file_end()) {
      st = session->EndFile(m.file_end());
    } else if (m.has_manifest_part()) {
      st = session->AddManifest(m.manifest_part());
    } else if (m.has_end()) {
      st = session->End(m.end().manifest_digest()).status();
      break;
    }
    if (!st.ok()) break;
  }
  session.reset();
  if (store->State().committed_checkpoint() != committed) std::abort();
  return 0;
}
