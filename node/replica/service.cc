#include "node/replica/service.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "common/chunk_codec.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "node/metrics.h"
#include "node/replica/restore.h"

namespace gwmirror {

using gwmirror::v1::PushMessage;

ReplicaService::ReplicaService(ReplicaStore* store, std::string state_dir,
                               CallGate* gate, DrillRunner* drills,
                               Activation* activation, AuditLog* audit,
                               SendBudget* budget)
    : store_(store),
      state_dir_(std::move(state_dir)),
      gate_(*gate),
      drills_(drills),
      activation_(activation),
      audit_(audit),
      budget_(budget) {}

void ReplicaService::Pace(size_t bytes) {
  if (budget_ != nullptr) budget_->Take(bytes);
}

void ReplicaService::Record(const CallGate::Ticket& t, const char* method,
                            std::string detail, const absl::Status& outcome) {
  if (audit_ == nullptr || (t.roles() & kRoleOperator) == 0) return;
  gwmirror::v1::AuditRecord r;
  r.set_unix_ms(absl::ToUnixMillis(absl::Now()));
  r.set_identity(t.identity());
  r.set_role(RoleNames(t.roles()));
  r.set_action(method);
  r.set_detail(std::move(detail));
  r.set_outcome(outcome.ok() ? "ok" : outcome.ToString());
  r.set_epoch(store_->State().epoch());
  if (absl::Status st = audit_->Append(std::move(r)); !st.ok()) {
    Logf(LogLevel::kError, "audit", "cannot append to the audit log: %s",
         st.ToString());
  }
}

bool ReplicaService::ControllerRead(const CallGate::Ticket& t,
                                    const gwmirror::v1::Envelope& e) {
  return e.epoch() == 0 &&
         (t.roles() & (kRoleCoordinator | kRoleOperator)) != 0;
}

grpc::Status ReplicaService::GetState(grpc::ServerContext* ctx,
                                      const gwmirror::v1::GetStateRequest* req,
                                      gwmirror::v1::ReplicaState* resp) {
  GWM_ADMIT_OR_RETURN(ticket, gate_, ctx, "Replica.GetState");
  // An operator without the coordinator (a forced promote) reads without
  // knowing the epoch; reading changes nothing.
  absl::Status st;
  if (!ControllerRead(ticket, req->envelope())) {
    st = store_->CheckEpoch(req->envelope());
  }
  if (st.ok()) *resp = store_->State();
  return ToGrpc(st);
}

grpc::Status ReplicaService::GetManifest(
    grpc::ServerContext* ctx, const gwmirror::v1::GetManifestRequest* req,
    grpc::ServerWriter<gwmirror::v1::ManifestBatch>* writer) {
  GWM_ADMIT_OR_RETURN(ticket, gate_, ctx, "Replica.GetManifest");
  absl::Status st = store_->CheckEpoch(req->envelope());
  if (!st.ok()) return ToGrpc(st);
  Manifest m = store_->CommittedManifest();
  gwmirror::v1::ManifestBatch batch;
  for (const Entry& e : m.entries()) {
    *batch.add_entries() = e;
    if (batch.entries_size() == 2000) {
      Pace(batch.ByteSizeLong());
      if (!writer->Write(batch)) return grpc::Status::CANCELLED;
      batch.Clear();
    }
  }
  if (batch.entries_size() > 0) {
    Pace(batch.ByteSizeLong());
    if (!writer->Write(batch)) return grpc::Status::CANCELLED;
  }
  return grpc::Status::OK;
}

grpc::Status ReplicaService::GetSignature(
    grpc::ServerContext* ctx, const gwmirror::v1::GetSignatureRequest* req,
    grpc::ServerWriter<gwmirror::v1::SignatureChunk>* writer) {
  GWM_ADMIT_OR_RETURN(ticket, gate_, ctx, "Replica.GetSignature");
  absl::Status st = store_->CheckEpoch(req->envelope());
  if (!st.ok()) return ToGrpc(st);
  if (req->targets_size() > kMaxFilesPerCall) {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("GetSignature names ", req->targets_size(),
                     " files (at most ", kMaxFilesPerCall, ")")));
  }
  if (req->block_len() < 256 || req->block_len() > 65536) {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("block_len ", req->block_len(), " outside 256..65536")));
  }
  gwmirror::v1::SignatureChunk c;
  auto send = [&]() -> absl::Status {
    Pace(c.data().size());
    if (!writer->Write(c)) return absl::CancelledError("client went away");
    c.clear_data();
    return absl::OkStatus();
  };
  for (int i = 0; i < req->targets_size(); ++i) {
    const auto& t = req->targets(i);
    c.Clear();
    c.set_target(i);
    st = store_->Signature(t.path(), t.sha256(), req->block_len(),
                           [&](absl::string_view out) -> absl::Status {
                             c.mutable_data()->append(out.data(), out.size());
                             if (c.data().size() >= kMaxChunk / 2) {
                               return send();
                             }
                             return absl::OkStatus();
                           });
    if (absl::IsCancelled(st)) return ToGrpc(st);
    // This file has none (other content committed, or unreadable here):
    // said for it alone, the others still come.
    if (!st.ok()) {
      c.clear_data();
      c.set_error_code(static_cast<int>(st.code()));
      c.set_error(std::string(st.message()));
    }
    c.set_last(true);
    st = send();
    if (!st.ok()) return ToGrpc(st);
  }
  return grpc::Status::OK;
}

grpc::Status ReplicaService::SampleContent(
    grpc::ServerContext* ctx, const gwmirror::v1::SampleContentRequest* req,
    gwmirror::v1::ContentSamples* resp) {
  GWM_ADMIT_OR_RETURN(ticket, gate_, ctx, "Replica.SampleContent");
  absl::Status st = store_->CheckEpoch(req->envelope());
  if (!st.ok()) return ToGrpc(st);
  if (req->targets_size() > kMaxFilesPerCall) {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("SampleContent names ", req->targets_size(),
                     " files (at most ", kMaxFilesPerCall, ")")));
  }
  for (const auto& t : req->targets()) {
    // A file that cannot be sampled (not that version, or unreadable on
    // this disk) is -1: the guard judges the others.
    auto look = store_->SampleContent(t.path(), t.sha256());
    if (!look.ok()) look = ContentLook{};
    resp->add_entropy(look->entropy);
    resp->add_sampled_bytes(look->bytes);
    resp->add_text_fraction(look->text);
  }
  return grpc::Status::OK;
}

absl::Status ReplicaService::DoPush(grpc::ServerReader<PushMessage>* reader,
                                    gwmirror::v1::PushResult* resp) {
  PushMessage msg;
  if (!reader->Read(&msg)) {
    return absl::InvalidArgumentError("empty push stream");
  }
  if (msg.kind_case() != PushMessage::kBegin) {
    return absl::InvalidArgumentError("a push must start with PushBegin");
  }
  RETURN_IF_ERROR(store_->CheckEpoch(msg.begin().envelope()));
  ASSIGN_OR_RETURN(std::unique_ptr<PushSession> session,
                   store_->BeginPush(msg.begin()));
  ChunkDecoder decoder;
  NodeMetrics& metrics = NodeMetrics::Get();
  metrics.received_bytes.Add(msg.ByteSizeLong());
  while (reader->Read(&msg)) {
    metrics.received_bytes.Add(msg.ByteSizeLong());
    switch (msg.kind_case()) {
      case PushMessage::kFileHeader:
        RETURN_IF_ERROR(session->BeginFile(msg.file_header()));
        break;
      case PushMessage::kFileChunk: {
        ASSIGN_OR_RETURN(absl::string_view raw,
                         decoder.Decode(msg.file_chunk().data(),
                                        msg.file_chunk().raw_size()));
        RETURN_IF_ERROR(session->FileData(raw));
        break;
      }
      case PushMessage::kFileEnd:
        RETURN_IF_ERROR(session->EndFile(msg.file_end()));
        metrics.received_files.Add(1);
        break;
      case PushMessage::kManifestPart:
        RETURN_IF_ERROR(session->AddManifest(msg.manifest_part()));
        break;
      case PushMessage::kEnd: {
        ASSIGN_OR_RETURN(*resp, session->End(msg.end().manifest_digest()));
        if (reader->Read(&msg)) {
          return absl::InvalidArgumentError("messages after PushEnd");
        }
        return absl::OkStatus();
      }
      case PushMessage::kBegin:
        return absl::InvalidArgumentError("a second PushBegin in one stream");
      default:
        return absl::InvalidArgumentError("unknown push message");
    }
  }
  return absl::AbortedError(
      "push stream ended before PushEnd (truncated or cancelled); the "
      "committed tree is unchanged");
}

grpc::Status ReplicaService::Push(grpc::ServerContext* ctx,
                                  grpc::ServerReader<PushMessage>* reader,
                                  gwmirror::v1::PushResult* resp) {
  GWM_ADMIT_OR_RETURN(ticket, gate_, ctx, "Replica.Push");
  absl::Status st = DoPush(reader, resp);
  if (!st.ok()) {
    Logf(LogLevel::kWarning, "replica", "push refused: %s", st.ToString());
  }
  return ToGrpc(st);
}

grpc::Status ReplicaService::Commit(grpc::ServerContext* ctx,
                                    const gwmirror::v1::CommitRequest* req,
                                    gwmirror::v1::CommitResult* resp) {
  GWM_ADMIT_OR_RETURN(ticket, gate_, ctx, "Replica.Commit");
  const grpc::Status out = [&]() -> grpc::Status {
    absl::Status st = store_->CheckEpoch(req->envelope());
    if (st.ok()) {
      st = store_->Commit(req->checkpoint(), req->manifest_digest(),
                          {req->pinned().begin(), req->pinned().end()});
    }
    ReleaseFreedHeap();
    if (st.ok()) {
      resp->set_committed_checkpoint(req->checkpoint());
      NodeMetrics::Get().commits.Add(1);
      NodeMetrics::Get().committed_checkpoint.Set(req->checkpoint());
      Logf(LogLevel::kInfo, "replica", "checkpoint=%d committed",
           req->checkpoint());
    }
    return ToGrpc(st);
  }();
  Record(ticket, "Replica.Commit",
         absl::StrCat("checkpoint ", req->checkpoint()), FromGrpc(out));
  return out;
}

grpc::Status ReplicaService::Abort(grpc::ServerContext* ctx,
                                   const gwmirror::v1::AbortRequest* req,
                                   gwmirror::v1::AbortResult* resp) {
  GWM_ADMIT_OR_RETURN(ticket, gate_, ctx, "Replica.Abort");
  const grpc::Status out = [&]() -> grpc::Status {
    absl::Status st = store_->CheckEpoch(req->envelope());
    if (st.ok()) st = store_->Abort(req->checkpoint());
    return ToGrpc(st);
  }();
  Record(ticket, "Replica.Abort",
         absl::StrCat("checkpoint ", req->checkpoint()), FromGrpc(out));
  return out;
}

grpc::Status ReplicaService::Activate(grpc::ServerContext* ctx,
                                      const gwmirror::v1::ActivateRequest* req,
                                      gwmirror::v1::ActivateResult* resp) {
  GWM_ADMIT_OR_RETURN(ticket, gate_, ctx, "Replica.Activate");
  const grpc::Status out = [&]() -> grpc::Status {
    absl::Status st = store_->CheckEpoch(req->envelope());
    if (st.ok() && activation_ == nullptr) {
      st = absl::UnimplementedError("this node cannot be promoted");
    }
    if (!st.ok()) return ToGrpc(st);
    if (req->phase() == gwmirror::v1::ACTIVATION_PHASE_CLAIM_ACTIVE) {
      // A forced promote: the operator's grant of the new epoch, kept for the
      // coordinator, which adopts it when it comes back (it checks the
      // signature itself).
      const gwmirror::v1::EpochGrant& grant = req->envelope().grant();
      auto issuer = store_->epoch().Verify(grant, req->envelope().epoch());
      st = issuer.status();
      if (st.ok() && grant.active_site() != store_->site()) {
        st = absl::InvalidArgumentError(absl::StrCat(
            "the forced promote's grant makes site \"", grant.active_site(),
            "\" active, but this node is on site \"", store_->site(), "\""));
      }
      if (st.ok()) {
        st = WriteFileAtomic(state_dir_ + "/active_claim",
                             grant.SerializeAsString(), 0600);
      }
      if (st.ok()) {
        resp->add_done(
            absl::StrCat("this site claims the active role at epoch ",
                         req->envelope().epoch()));
        Logf(LogLevel::kWarning, "node",
             "forced promote: active at epoch %d (without the coordinator)",
             req->envelope().epoch());
      }
      return ToGrpc(st);
    }
    if (req->phase() == gwmirror::v1::ACTIVATION_PHASE_ROLLBACK) {
      absl::Time t = absl::Now();
      const uint64_t from = store_->State().committed_checkpoint();
      st = store_->Rollback(req->checkpoint());
      if (st.ok()) {
        resp->add_done(absl::StrCat(
            "tree brought from checkpoint ", from, " to ", req->checkpoint(),
            " in ", absl::ToInt64Milliseconds(absl::Now() - t), " ms"));
      }
      return ToGrpc(st);
    }
    auto r = activation_->Run(req->phase());
    if (!r.ok()) {
      Logf(LogLevel::kWarning, "node", "promote %s failed: %s",
           gwmirror::v1::ActivationPhase_Name(req->phase()),
           r.status().message());
      return ToGrpc(r.status());
    }
    for (std::string& line : *r) resp->add_done(std::move(line));
    return grpc::Status::OK;
  }();
  Record(
      ticket, "Replica.Activate",
      absl::StrCat("phase ", gwmirror::v1::ActivationPhase_Name(req->phase()),
                   ", checkpoint ", req->checkpoint()),
      FromGrpc(out));
  return out;
}

grpc::Status ReplicaService::Drill(grpc::ServerContext* ctx,
                                   const gwmirror::v1::DrillRequest* req,
                                   gwmirror::v1::DrillResult* resp) {
  GWM_ADMIT_OR_RETURN(ticket, gate_, ctx, "Replica.Drill");
  const grpc::Status out = [&]() -> grpc::Status {
    absl::Status st = store_->CheckEpoch(req->envelope());
    if (st.ok() && drills_ == nullptr) {
      st = absl::UnimplementedError("this node runs no drills");
    }
    if (!st.ok()) return ToGrpc(st);
    Logf(LogLevel::kInfo, "replica", "drill=%d starting", req->drill_id());
    auto r = drills_->Run(*req);
    if (!r.ok()) {
      Logf(LogLevel::kWarning, "replica", "drill=%d failed: %s",
           req->drill_id(), r.status().message());
      return ToGrpc(r.status());
    }
    Logf(LogLevel::kInfo, "replica",
         "drill=%d checkpoint=%d verified: %d entries, %d bytes in %d ms",
         req->drill_id(), r->checkpoint(), r->entries(), r->bytes(),
         r->copy_ms());
    *resp = *std::move(r);
    return grpc::Status::OK;
  }();
  Record(ticket, "Replica.Drill",
         absl::StrCat("drill ", req->drill_id(), ", checkpoint ",
                      req->checkpoint()),
         FromGrpc(out));
  return out;
}

}  // namespace gwmirror

namespace gwmirror {

grpc::Status ReplicaService::ListHistory(
    grpc::ServerContext* ctx, const gwmirror::v1::ListHistoryRequest* req,
    gwmirror::v1::HistoryList* resp) {
  GWM_ADMIT_OR_RETURN(ticket, gate_, ctx, "Replica.ListHistory");
  const grpc::Status out = [&]() -> grpc::Status {
    absl::Status st;
    if (req->set_pins() || !ControllerRead(ticket, req->envelope())) {
      st = store_->CheckEpoch(req->envelope());
    }
    if (st.ok() && req->set_pins()) {
      st = store_->history().SetPins(
          {req->pinned().begin(), req->pinned().end()});
    }
    if (!st.ok()) return ToGrpc(st);
    const History& h = store_->history();
    std::set<uint64_t> pins = h.pins();
    std::map<uint64_t, uint64_t> bytes;
    for (auto [n, b] : h.BytesByPoint()) bytes[n] = b;
    for (const HistoryPoint& p : h.Points()) {
      gwmirror::v1::HistoryPoint* out = resp->add_points();
      out->set_checkpoint(p.checkpoint);
      out->set_committed_unix_ms(p.committed_unix_ms);
      out->set_entries(p.entries);
      out->set_added(p.added);
      out->set_changed(p.changed);
      out->set_removed(p.removed);
      out->set_changed_bytes(p.changed_bytes);
      out->set_bytes_on_disk(bytes[p.checkpoint]);
      out->set_pinned(pins.count(p.checkpoint) > 0);
    }
    resp->set_total_bytes(h.TotalBytes());
    resp->set_committed_checkpoint(store_->State().committed_checkpoint());
    return grpc::Status::OK;
  }();
  if (req->set_pins()) {
    Record(ticket, "Replica.ListHistory", "set pins", FromGrpc(out));
  }
  return out;
}

grpc::Status ReplicaService::Export(
    grpc::ServerContext* ctx, const gwmirror::v1::ExportRequest* req,
    grpc::ServerWriter<gwmirror::v1::ExportChunk>* writer) {
  GWM_ADMIT_OR_RETURN(ticket, gate_, ctx, "Replica.Export");
  const grpc::Status out = [&]() -> grpc::Status {
    absl::Status st = store_->CheckEpoch(req->envelope());
    if (!st.ok()) return ToGrpc(st);
    uint64_t n = req->checkpoint() ? req->checkpoint()
                                   : store_->State().committed_checkpoint();
    auto m = store_->history().LoadManifest(n);
    if (!m.ok()) return ToGrpc(m.status());
    const std::string scratch = state_dir_ + "/replica/history/objects";
    gwmirror::v1::ExportChunk chunk;
    std::string* buf = chunk.mutable_data();
    st = WriteTar(store_->history(), *m, req->slot(), n, scratch,
                  [&](absl::string_view piece) -> absl::Status {
                    buf->append(piece.data(), piece.size());
                    if (buf->size() < (1 << 20)) return absl::OkStatus();
                    Pace(buf->size());
                    if (ctx->IsCancelled() || !writer->Write(chunk)) {
                      return absl::CancelledError("export cancelled");
                    }
                    buf->clear();
                    return absl::OkStatus();
                  });
    if (st.ok() && !buf->empty()) {
      Pace(buf->size());
      if (!writer->Write(chunk)) st = absl::CancelledError("export cancelled");
    }
    Logf(st.ok() ? LogLevel::kInfo : LogLevel::kWarning, "replica",
         "checkpoint=%d export %s", n, st.ok() ? "done" : st.ToString());
    return ToGrpc(st);
  }();
  Record(ticket, "Replica.Export",
         absl::StrCat("checkpoint ", req->checkpoint(), ", slot ", req->slot()),
         FromGrpc(out));
  return out;
}

grpc::Status ReplicaService::Verify(grpc::ServerContext* ctx,
                                    const gwmirror::v1::VerifyRequest* req,
                                    gwmirror::v1::VerifyResult* resp) {
  GWM_ADMIT_OR_RETURN(ticket, gate_, ctx, "Replica.Verify");
  const grpc::Status out = [&]() -> grpc::Status {
    absl::Status st = store_->CheckEpoch(req->envelope());
    if (!st.ok()) return ToGrpc(st);
    auto r = store_->Verify(req->repair());
    if (!r.ok()) return ToGrpc(r.status());
    Logf(r->problems().empty() ? LogLevel::kInfo : LogLevel::kWarning,
         "replica",
         "checkpoint=%d verify: %d files, %d stored versions, %d problems",
         r->committed_checkpoint(), r->files_checked(), r->versions_checked(),
         r->problems_size());
    // What was found and repaired, by kind, for alerts and dashboards.
    NodeMetrics& m = NodeMetrics::Get();
    const int64_t tree = static_cast<int64_t>(r->tree_differences());
    const int64_t tree_repaired = req->repair() ? tree : 0;
    m.verify_problems.Set(tree, {"tree"});
    m.verify_problems.Set(r->problems_size() - tree, {"history"});
    m.repairs.Add(tree_repaired, {"tree"});
    m.repairs.Add(r->repaired_size() - tree_repaired, {"history"});
    *resp = *std::move(r);
    return grpc::Status::OK;
  }();
  Record(ticket, "Replica.Verify", req->repair() ? "repair" : "check",
         FromGrpc(out));
  return out;
}

}  // namespace gwmirror
