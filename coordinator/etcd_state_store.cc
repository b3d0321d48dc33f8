#include "coordinator/etcd_state_store.h"

#include <algorithm>
#include <functional>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/protocol_names.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

using etcdserverpb::Compare;
using gwmirror::v1::CheckpointState;
using gwmirror::v1::StoredCheckpoint;
using gwmirror::v1::StoredMeta;

// `c` moves from state `from` to `to` in the counts and the unfinished list.
void Move(StoredMeta& meta, uint64_t id, CheckpointState from,
          CheckpointState to) {
  auto& counts = *meta.mutable_counts();
  if (from != gwmirror::v1::CHECKPOINT_STATE_UNSPECIFIED) {
    if (--counts[StateName(from)] == 0) counts.erase(StateName(from));
  }
  ++counts[StateName(to)];
  const bool open = to == gwmirror::v1::CHECKPOINT_STATE_CUT ||
                    to == gwmirror::v1::CHECKPOINT_STATE_CONSISTENT;
  auto* u = meta.mutable_unfinished();
  auto it = std::find(u->begin(), u->end(), id);
  if (open && it == u->end()) u->Add(id);
  if (!open && it != u->end()) u->erase(it);
}

Compare* Fence(etcdserverpb::TxnRequest& req, const std::string& key,
               Compare::CompareTarget target) {
  Compare* c = req.add_compare();
  c->set_key(key);
  c->set_target(target);
  c->set_result(Compare::EQUAL);
  return c;
}

void AddPut(etcdserverpb::TxnRequest& req, const std::string& key,
            const std::string& value, int64_t lease = 0) {
  etcdserverpb::PutRequest* put = req.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  put->set_lease(lease);
}

void AddRange(google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>* ops,
              const std::string& key) {
  ops->Add()->mutable_request_range()->set_key(key);
}

// The value of the one key a txn's failure branch read (nullptr: absent).
const etcdserverpb::KeyValue* ReadBack(const etcdserverpb::TxnResponse& resp,
                                       int op) {
  if (resp.responses_size() <= op) return nullptr;
  const auto& range = resp.responses(op).response_range();
  return range.kvs_size() > 0 ? &range.kvs(0) : nullptr;
}

}  // namespace

EtcdStateStore::EtcdStateStore(std::unique_ptr<EtcdClient> client,
                               std::string prefix, Options options,
                               int64_t ttl_s)
    : client_(std::move(client)),
      prefix_(std::move(prefix)),
      options_(std::move(options)),
      ttl_s_(ttl_s) {}

EtcdStateStore::Options EtcdStateStore::OptionsFor(
    const gwmirror::v1::CoordinatorConfig& config) {
  Options options;
  options.name =
      config.etcd().name().empty() ? config.listen() : config.etcd().name();
  options.address = config.listen();
  options.active_site = config.initial_active_site();
  return options;
}

absl::StatusOr<std::unique_ptr<EtcdStateStore>> EtcdStateStore::Open(
    const gwmirror::v1::EtcdStore& config, Options options) {
  const absl::Duration wait = options.wait_for_lead;
  ASSIGN_OR_RETURN(auto s, Connect(config, std::move(options)));
  RETURN_IF_ERROR(s->Campaign(wait));
  return s;
}

absl::StatusOr<std::unique_ptr<EtcdStateStore>> EtcdStateStore::Connect(
    const gwmirror::v1::EtcdStore& config, Options options) {
  ASSIGN_OR_RETURN(auto client, EtcdClient::Connect(config));
  std::string prefix = config.prefix().empty() ? "/gwmirror/" : config.prefix();
  if (options.name.empty()) {
    options.name = config.name().empty() ? "coordinator" : config.name();
  }
  const int64_t ttl = config.lease_ttl_s() ? config.lease_ttl_s() : 10;
  // A member that does not answer must not cost a renewal: a third of the
  // TTL per call (1 s at least, 5 s at most), then the next member.
  client->set_call_timeout(
      std::clamp(absl::Seconds(ttl) / 3, absl::Seconds(1), absl::Seconds(5)));
  std::unique_ptr<EtcdStateStore> s(new EtcdStateStore(
      std::move(client), std::move(prefix), std::move(options), ttl));
  // etcd may be starting too (a site coming back): wait for it, as long
  // as for the lead.
  const absl::Time give_up = absl::Now() + s->options_.wait_for_lead;
  absl::StatusOr<etcdserverpb::LeaseGrantResponse> grant;
  absl::Time asked;
  for (bool said = false;; said = true) {
    asked = absl::Now();
    grant = s->client_->LeaseGrant(ttl);
    const bool unanswered = absl::IsUnavailable(grant.status()) ||
                            absl::IsDeadlineExceeded(grant.status());
    if (grant.ok() || !unanswered || absl::Now() >= give_up) break;
    if (!said) {
      Logf(LogLevel::kWarning, "coordinator",
           "etcd: no member answers yet (%s); trying again",
           grant.status().message());
    }
    if (s->options_.stopped && s->options_.stopped()) {
      return absl::CancelledError("stopped while waiting for etcd");
    }
    absl::SleepFor(std::min(absl::Milliseconds(500), give_up - absl::Now()));
  }
  RETURN_IF_ERROR(grant.status());
  s->lease_ = grant->id();
  {
    absl::MutexLock l(&s->mu_);
    s->lease_valid_until_ = asked + absl::Seconds(grant->ttl());
  }
  s->keepalive_ = std::thread([p = s.get()] { p->KeepAlive(); });
  // From the moment etcd answers (before, every member would read DOWN).
  s->member_watch_ = std::thread([p = s.get()] { p->WatchMembers(); });
  RETURN_IF_ERROR(s->Announce("following", 0));
  return s;
}

absl::Status EtcdStateStore::Announce(const std::string& state,
                                      int64_t fencing_token) {
  gwmirror::v1::CoordinatorPeer me;
  me.set_name(name_);
  {
    absl::MutexLock l(&mu_);
    me.set_address(address_);
  }
  me.set_state(state);
  me.set_since_unix_ms(absl::ToUnixMillis(absl::Now()));
  me.set_fencing_token(fencing_token);
  etcdserverpb::TxnRequest req;
  AddPut(req, prefix_ + "coordinators/" + name_, me.SerializeAsString(),
         lease_);
  return client_->Txn(req).status();
}

absl::Status EtcdStateStore::SetAddress(const std::string& address) {
  {
    absl::MutexLock l(&mu_);
    address_ = address;
  }
  return Announce(leader_revision_ ? "leading" : "following", leader_revision_);
}

void EtcdStateStore::StopCampaign() {
  absl::MutexLock l(&mu_);
  stop_campaign_ = true;
}

EtcdStateStore::~EtcdStateStore() {
  bool lost;
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
    lost = !lost_.empty();
  }
  if (keepalive_.joinable()) keepalive_.join();
  if (member_watch_.joinable()) member_watch_.join();
  if (lease_ != 0 && !lost) {
    if (absl::Status st = client_->LeaseRevoke(lease_); !st.ok()) {
      Logf(LogLevel::kWarning, "coordinator",
           "etcd: could not give up the lead (it ends with the lease, "
           "within %d s): %s",
           ttl_s_, st.message());
    }
  }
}

absl::Status EtcdStateStore::Campaign(absl::Duration wait) {
  const absl::Time give_up = absl::Now() + wait;
  const std::string key = prefix_ + "leader";
  std::string said;
  for (;;) {
    etcdserverpb::TxnRequest req;
    Fence(req, key, Compare::CREATE)->set_create_revision(0);
    AddPut(req, key, name_, lease_);
    AddRange(req.mutable_failure(), key);
    ASSIGN_OR_RETURN(auto resp, client_->Txn(req));
    if (resp.succeeded()) {
      leader_revision_ = resp.header().revision();
      Logf(LogLevel::kInfo, "coordinator",
           "etcd: %s leads (key %s, fencing token %d, lease ttl %d s)", name_,
           key, leader_revision_.load(), ttl_s_);
      if (absl::Status st = Announce("leading", leader_revision_); !st.ok()) {
        Logf(LogLevel::kWarning, "coordinator",
             "etcd: could not say so under %scoordinators/: %s", prefix_,
             st.message());
      }
      absl::MutexLock l(&mu_);
      return LoadMeta(options_.active_site);
    }
    const etcdserverpb::KeyValue* holder = ReadBack(resp, 0);
    const std::string who = holder ? holder->value() : "(gone)";
    if (absl::Now() >= give_up) {
      return absl::UnavailableError(absl::StrCat(
          "etcd: the lead (key ", key, ") is held by \"", who,
          "\"; another coordinator is running, or one that stopped holds it "
          "until its lease expires"));
    }
    if (who != said) {
      Logf(LogLevel::kInfo, "coordinator",
           "etcd: waiting for the lead, held by \"%s\"", who);
      said = who;
    }
    {
      absl::MutexLock l(&mu_);
      if (stop_campaign_) return absl::CancelledError("stopped");
      absl::Status lead = LeadLocked();  // Notes an expired lease.
      if (!lost_.empty()) return lead;
    }
    absl::SleepFor(std::min(absl::Milliseconds(500), give_up - absl::Now()));
  }
}

void EtcdStateStore::KeepAlive() {
  // Renewed three times per TTL, so one lost renewal does not lose it.
  const absl::Duration period = absl::Seconds(ttl_s_) / 3;
  absl::MutexLock l(&mu_);
  while (!stop_ && lost_.empty()) {
    mu_.AwaitWithTimeout(absl::Condition(&stop_), period);
    if (stop_) break;
    mu_.Unlock();
    const absl::Time sent = absl::Now();
    absl::StatusOr<int64_t> left = client_->LeaseKeepAlive(lease_);
    mu_.Lock();
    if (left.ok() && *left > 0) {
      lease_valid_until_ = sent + absl::Seconds(*left);
    } else if (left.ok()) {
      lost_ = "its etcd lease expired";
    } else if (absl::Now() >= lease_valid_until_) {
      lost_ = absl::StrCat("its etcd lease could not be renewed in time: ",
                           left.status().message());
    }
  }
  if (!lost_.empty()) {
    Logf(LogLevel::kError, "coordinator", "etcd: %s lost the lead: %s", name_,
         lost_);
  }
}

absl::Status EtcdStateStore::LeadLocked() const {
  if (lost_.empty() && absl::Now() >= lease_valid_until_) {
    lost_ = "its etcd lease was not renewed in time";
  }
  if (lost_.empty() && leader_revision_ == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this coordinator (", name_, ") does not lead; it only reads"));
  }
  if (lost_.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("this coordinator (", name_, ") no longer leads: ", lost_,
                   "; it refuses to act (restart it to campaign again)"));
}

void EtcdStateStore::WatchMembers() {
  absl::MutexLock l(&mu_);
  while (!stop_) {
    mu_.Unlock();
    std::vector<gwmirror::v1::EtcdMemberHealth> health;
    uint64_t raft_leader = 0;
    const auto statuses = client_->MemberStatus(absl::Seconds(2));
    for (const auto& st : statuses) {
      if (st.ok()) raft_leader = st->leader();
    }
    for (size_t i = 0; i < statuses.size(); ++i) {
      gwmirror::v1::EtcdMemberHealth& h = health.emplace_back();
      h.set_endpoint(client_->endpoint(i));
      h.set_up(statuses[i].ok());
      if (statuses[i].ok()) {
        h.set_raft_leader(statuses[i]->header().member_id() == raft_leader);
      } else {
        h.set_error(std::string(statuses[i].status().message()));
      }
    }
    mu_.Lock();
    health_ = std::move(health);
    mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Seconds(5));
  }
}

std::vector<gwmirror::v1::EtcdMemberHealth> EtcdStateStore::StoreHealth()
    const {
  absl::MutexLock l(&mu_);
  return health_;
}

std::vector<gwmirror::v1::CoordinatorPeer> EtcdStateStore::Coordinators()
    const {
  const std::string start = prefix_ + "coordinators/";
  etcdserverpb::RangeRequest r;
  r.set_key(start);
  r.set_range_end(EtcdPrefixEnd(start));
  absl::StatusOr<etcdserverpb::RangeResponse> resp = client_->Range(r);
  std::vector<gwmirror::v1::CoordinatorPeer> out;
  if (!resp.ok()) return out;
  for (const auto& kv : resp->kvs()) {
    gwmirror::v1::CoordinatorPeer p;
    if (p.ParseFromString(kv.value()) && !p.name().empty()) {
      out.push_back(std::move(p));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return (a.state() == "leading") > (b.state() == "leading");
  });
  return out;
}

absl::Status EtcdStateStore::Refresh() {
  etcdserverpb::RangeRequest r;
  r.set_key(prefix_ + "meta");
  ASSIGN_OR_RETURN(auto resp, client_->Range(r));
  StoredMeta meta;
  if (resp.kvs_size() == 0) {
    return absl::NotFoundError(absl::StrCat(
        "etcd key ", r.key(), " is missing: no coordinator has led yet"));
  }
  if (!meta.ParseFromString(resp.kvs(0).value()) || meta.epoch() == 0 ||
      meta.active_site().empty()) {
    return absl::DataLossError(
        absl::StrCat("etcd key ", r.key(), ": not a gwmirror state record"));
  }
  absl::MutexLock l(&mu_);
  if (leader_revision_ == 0) {
    meta_ = std::move(meta);
    meta_revision_ = resp.kvs(0).mod_revision();
  }
  return absl::OkStatus();
}

absl::Status EtcdStateStore::Lead() const {
  absl::MutexLock l(&mu_);
  return LeadLocked();
}

absl::Status EtcdStateStore::LoadMeta(const std::string& active_site) {
  const std::string key = prefix_ + "meta";
  etcdserverpb::TxnRequest req;
  Fence(req, key, Compare::CREATE)->set_create_revision(0);
  Fence(req, prefix_ + "leader", Compare::CREATE)
      ->set_create_revision(leader_revision_);
  StoredMeta first;
  first.set_epoch(1);
  first.set_active_site(active_site);
  AddPut(req, key, first.SerializeAsString());
  AddRange(req.mutable_success(), key);
  AddRange(req.mutable_failure(), key);
  ASSIGN_OR_RETURN(auto resp, client_->Txn(req));
  const etcdserverpb::KeyValue* kv = ReadBack(resp, resp.succeeded() ? 1 : 0);
  if (kv == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("etcd: ", key,
                     " is missing and this coordinator could "
                     "not create it (did it lose the lead?)"));
  }
  // Any bytes can parse as unknown fields: a record without an epoch or an
  // active site is not one of ours.
  if (!meta_.ParseFromString(kv->value()) || meta_.epoch() == 0 ||
      meta_.active_site().empty()) {
    return absl::DataLossError(
        absl::StrCat("etcd key ", key, ": not a gwmirror state record"));
  }
  meta_revision_ = kv->mod_revision();
  if (resp.succeeded()) {
    Logf(LogLevel::kInfo, "coordinator",
         "etcd: new state under %s: epoch 1, %s active", prefix_, active_site);
  }
  return absl::OkStatus();
}

absl::Status EtcdStateStore::Write(
    const StoredMeta& next,
    const std::vector<std::pair<std::string, std::string>>& puts,
    const std::vector<std::pair<std::string, std::string>>& deletes,
    uint64_t* deleted) {
  RETURN_IF_ERROR(LeadLocked());
  const std::string meta_key = prefix_ + "meta";
  const std::string leader_key = prefix_ + "leader";
  const std::string meta_bytes = next.SerializeAsString();
  etcdserverpb::TxnRequest req;
  Fence(req, leader_key, Compare::CREATE)
      ->set_create_revision(leader_revision_);
  Fence(req, meta_key, Compare::MOD)->set_mod_revision(meta_revision_);
  AddPut(req, meta_key, meta_bytes);
  for (const auto& [key, value] : puts) AddPut(req, key, value);
  for (const auto& [key, end] : deletes) {
    auto* del = req.add_success()->mutable_request_delete_range();
    del->set_key(key);
    del->set_range_end(end);
  }
  AddRange(req.mutable_failure(), leader_key);
  AddRange(req.mutable_failure(), meta_key);
  absl::StatusOr<etcdserverpb::TxnResponse> resp = client_->Txn(req);
  if (resp.ok() && resp->succeeded()) {
    meta_ = next;
    meta_revision_ = resp->header().revision();
    for (const auto& r : resp->responses()) {
      if (deleted != nullptr && r.has_response_delete_range()) {
        *deleted += r.response_delete_range().deleted();
      }
    }
    return absl::OkStatus();
  }
  const etcdserverpb::KeyValue* leader = nullptr;
  const etcdserverpb::KeyValue* meta = nullptr;
  etcdserverpb::RangeResponse leader_now, meta_now;
  if (resp.ok()) {
    leader = ReadBack(*resp, 0);
    meta = ReadBack(*resp, 1);
  } else {
    // The answer was lost: settle what happened by reading back.
    etcdserverpb::RangeRequest r;
    r.set_key(leader_key);
    absl::StatusOr<etcdserverpb::RangeResponse> l = client_->Range(r);
    r.set_key(meta_key);
    absl::StatusOr<etcdserverpb::RangeResponse> m = client_->Range(r);
    if (!l.ok() || !m.ok()) {
      lost_ = absl::StrCat("a write's outcome is unknown (",
                           resp.status().message(), ")");
      return absl::UnavailableError(absl::StrCat(
          "etcd did not answer a write nor a read after it; its outcome is "
          "unknown until a coordinator reads the state again: ",
          resp.status().message()));
    }
    leader_now = *std::move(l);
    meta_now = *std::move(m);
    leader = leader_now.kvs_size() ? &leader_now.kvs(0) : nullptr;
    meta = meta_now.kvs_size() ? &meta_now.kvs(0) : nullptr;
  }
  const bool fenced =
      leader != nullptr && leader->create_revision() == leader_revision_;
  if (fenced && meta != nullptr && meta->mod_revision() != meta_revision_ &&
      meta->value() == meta_bytes) {
    // It happened: its answer was lost, or a member died after taking it
    // and the client sent it again to another.
    meta_ = next;
    meta_revision_ = meta->mod_revision();
    return absl::OkStatus();
  }
  if (fenced && !resp.ok() && meta != nullptr &&
      meta->mod_revision() == meta_revision_) {
    return absl::UnavailableError(absl::StrCat(
        "etcd write not done (nothing changed): ", resp.status().message()));
  }
  if (!fenced) {
    lost_ =
        absl::StrCat("the leader key is ",
                     leader ? absl::StrCat("now \"", leader->value(), "\"'s")
                            : std::string("gone"),
                     " (its lease expired)");
  } else {
    // Someone wrote the state without the lead (a recover or a migration
    // run against a live cluster): this store's view is stale.
    lost_ = "the state was changed by another writer";
  }
  return LeadLocked();
}

std::string EtcdStateStore::CheckpointKey(uint64_t id) const {
  return absl::StrFormat("%scheckpoints/%020d", prefix_, id);
}

std::string EtcdStateStore::DrillKey(uint64_t id) const {
  return absl::StrFormat("%sdrills/%020d", prefix_, id);
}

absl::StatusOr<StoredCheckpoint> EtcdStateStore::LoadCheckpoint(
    uint64_t id) const {
  etcdserverpb::RangeRequest r;
  r.set_key(CheckpointKey(id));
  ASSIGN_OR_RETURN(auto resp, client_->Range(r));
  if (resp.kvs_size() == 0) {
    return absl::NotFoundError(absl::StrCat("no checkpoint ", id));
  }
  StoredCheckpoint c;
  if (!c.ParseFromString(resp.kvs(0).value())) {
    return absl::DataLossError(
        absl::StrCat("etcd key ", r.key(), ": not a checkpoint record"));
  }
  return c;
}

uint64_t EtcdStateStore::Epoch() const {
  absl::MutexLock l(&mu_);
  return meta_.epoch();
}

std::string EtcdStateStore::ActiveSite() const {
  absl::MutexLock l(&mu_);
  return meta_.active_site();
}

std::string EtcdStateStore::FencedSite() const {
  absl::MutexLock l(&mu_);
  return meta_.fenced_site();
}

absl::StatusOr<uint64_t> EtcdStateStore::SwitchActive(const std::string& site) {
  absl::MutexLock l(&mu_);
  if (site == meta_.active_site()) {
    return absl::FailedPreconditionError(
        absl::StrCat("site ", site, " is active already"));
  }
  StoredMeta next = meta_;
  next.set_epoch(meta_.epoch() + 1);
  next.set_fenced_site(meta_.active_site());
  next.set_active_site(site);
  RETURN_IF_ERROR(Write(next, {}));
  return next.epoch();
}

absl::Status EtcdStateStore::AdoptActive(uint64_t epoch,
                                         const std::string& site) {
  absl::MutexLock l(&mu_);
  if (epoch <= meta_.epoch()) return absl::OkStatus();
  StoredMeta next = meta_;
  next.set_epoch(epoch);
  next.set_fenced_site(site == meta_.active_site() ? meta_.fenced_site()
                                                   : meta_.active_site());
  next.set_active_site(site);
  return Write(next, {});
}

absl::Status EtcdStateStore::Recover(const Recovered& r) {
  absl::MutexLock l(&mu_);
  if (meta_.last_checkpoint() != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the coordinator state already records checkpoints: recover only "
        "rebuilds a lost state (delete the keys under ",
        prefix_, " first: etcdctl del --prefix ", prefix_, ")"));
  }
  StoredMeta next = meta_;
  next.set_epoch(r.epoch);
  next.set_active_site(r.active_site);
  next.set_fenced_site(r.fenced_site);
  next.clear_pins();
  for (uint64_t p : r.pins) next.add_pins(p);
  std::vector<std::pair<std::string, std::string>> puts;
  if (r.checkpoint != 0) {
    StoredCheckpoint c;
    gwmirror::v1::CheckpointInfo& info = *c.mutable_info();
    info.set_id(r.checkpoint);
    info.set_epoch(r.epoch);
    info.set_state(gwmirror::v1::CHECKPOINT_STATE_APPLIED);
    info.set_cut_unix_ms(r.cut_ms);
    info.set_consistent_unix_ms(r.cut_ms);
    info.set_applied_unix_ms(r.cut_ms);
    info.set_reason("recovered from the nodes");
    next.set_last_checkpoint(r.checkpoint);
    Move(next, r.checkpoint, gwmirror::v1::CHECKPOINT_STATE_UNSPECIFIED,
         gwmirror::v1::CHECKPOINT_STATE_APPLIED);
    puts.emplace_back(CheckpointKey(r.checkpoint), c.SerializeAsString());
  }
  return Write(next, puts);
}

std::vector<uint64_t> EtcdStateStore::Pins() const {
  absl::MutexLock l(&mu_);
  std::set<uint64_t> pins(meta_.pins().begin(), meta_.pins().end());
  return {pins.begin(), pins.end()};
}

absl::Status EtcdStateStore::Pin(uint64_t id, bool pin) {
  absl::MutexLock l(&mu_);
  std::set<uint64_t> pins(meta_.pins().begin(), meta_.pins().end());
  if (pin) {
    pins.insert(id);
  } else {
    pins.erase(id);
  }
  StoredMeta next = meta_;
  next.clear_pins();
  for (uint64_t p : pins) next.add_pins(p);
  return Write(next, {});
}

absl::StatusOr<uint64_t> EtcdStateStore::BeginCut(uint64_t epoch,
                                                  int64_t now_ms) {
  absl::MutexLock l(&mu_);
  StoredMeta next = meta_;
  const uint64_t id = meta_.last_checkpoint() + 1;
  next.set_last_checkpoint(id);
  Move(next, id, gwmirror::v1::CHECKPOINT_STATE_UNSPECIFIED,
       gwmirror::v1::CHECKPOINT_STATE_CUT);
  StoredCheckpoint c;
  c.mutable_info()->set_id(id);
  c.mutable_info()->set_epoch(epoch);
  c.mutable_info()->set_state(gwmirror::v1::CHECKPOINT_STATE_CUT);
  c.mutable_info()->set_cut_unix_ms(now_ms);
  RETURN_IF_ERROR(Write(next, {{CheckpointKey(id), c.SerializeAsString()}}));
  return id;
}

absl::Status EtcdStateStore::RecordConsistent(
    uint64_t id, const std::map<std::string, std::string>& digests,
    int64_t now_ms) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(StoredCheckpoint c, LoadCheckpoint(id));
  if (c.info().state() != gwmirror::v1::CHECKPOINT_STATE_CUT) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", id, " is not an open cut; it cannot become consistent"));
  }
  c.mutable_info()->set_state(gwmirror::v1::CHECKPOINT_STATE_CONSISTENT);
  c.mutable_info()->set_consistent_unix_ms(now_ms);
  for (const auto& [slot, digest] : digests) {
    (*c.mutable_info()->mutable_digests())[slot] =
        absl::BytesToHexString(digest);
  }
  StoredMeta next = meta_;
  Move(next, id, gwmirror::v1::CHECKPOINT_STATE_CUT,
       gwmirror::v1::CHECKPOINT_STATE_CONSISTENT);
  // A crash here has written nothing: N stays a cut.
  RETURN_IF_ERROR(FaultPoint("coordinator:commit-point"));
  return Write(next, {{CheckpointKey(id), c.SerializeAsString()}});
}

absl::Status EtcdStateStore::RecordApplied(
    uint64_t id, const std::vector<std::string>& slots, int64_t now_ms) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(StoredCheckpoint c, LoadCheckpoint(id));
  std::set<std::string> applied(c.applied_slots().begin(),
                                c.applied_slots().end());
  for (const std::string& slot : slots) {
    if (!c.info().digests().contains(slot)) {
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint ", id, " has no slot \"", slot, "\""));
    }
    applied.insert(slot);
  }
  c.clear_applied_slots();
  for (const std::string& slot : applied) c.add_applied_slots(slot);
  StoredMeta next = meta_;
  if (c.info().state() == gwmirror::v1::CHECKPOINT_STATE_CONSISTENT &&
      applied.size() == static_cast<size_t>(c.info().digests_size())) {
    c.mutable_info()->set_state(gwmirror::v1::CHECKPOINT_STATE_APPLIED);
    c.mutable_info()->set_applied_unix_ms(now_ms);
    Move(next, id, gwmirror::v1::CHECKPOINT_STATE_CONSISTENT,
         gwmirror::v1::CHECKPOINT_STATE_APPLIED);
  }
  return Write(next, {{CheckpointKey(id), c.SerializeAsString()}});
}

absl::Status EtcdStateStore::RecordAborted(uint64_t id,
                                           const std::string& reason) {
  absl::MutexLock l(&mu_);
  absl::StatusOr<StoredCheckpoint> c = LoadCheckpoint(id);
  if (absl::IsNotFound(c.status()) ||
      (c.ok() && c->info().state() != gwmirror::v1::CHECKPOINT_STATE_CUT)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", id, " is not an open cut; cannot abort it"));
  }
  RETURN_IF_ERROR(c.status());
  c->mutable_info()->set_state(gwmirror::v1::CHECKPOINT_STATE_ABORTED);
  c->mutable_info()->set_reason(reason);
  StoredMeta next = meta_;
  Move(next, id, gwmirror::v1::CHECKPOINT_STATE_CUT,
       gwmirror::v1::CHECKPOINT_STATE_ABORTED);
  return Write(next, {{CheckpointKey(id), c->SerializeAsString()}});
}

absl::StatusOr<gwmirror::v1::CheckpointInfo> EtcdStateStore::Get(
    uint64_t id) const {
  ASSIGN_OR_RETURN(StoredCheckpoint c, LoadCheckpoint(id));
  return c.info();
}

absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>> EtcdStateStore::List(
    size_t limit, bool committed_only) const {
  std::vector<gwmirror::v1::CheckpointInfo> out;
  const std::string start = prefix_ + "checkpoints/";
  std::string end = EtcdPrefixEnd(start);
  while (out.size() < limit) {
    etcdserverpb::RangeRequest r;
    r.set_key(start);
    r.set_range_end(end);
    r.set_sort_order(etcdserverpb::RangeRequest::DESCEND);
    r.set_sort_target(etcdserverpb::RangeRequest::KEY);
    r.set_limit(committed_only ? 256
                               : static_cast<int64_t>(limit - out.size()));
    ASSIGN_OR_RETURN(auto resp, client_->Range(r));
    for (const auto& kv : resp.kvs()) {
      StoredCheckpoint c;
      if (!c.ParseFromString(kv.value())) {
        return absl::DataLossError(
            absl::StrCat("etcd key ", kv.key(), ": not a checkpoint record"));
      }
      const CheckpointState s = c.info().state();
      if (committed_only && s != gwmirror::v1::CHECKPOINT_STATE_CONSISTENT &&
          s != gwmirror::v1::CHECKPOINT_STATE_APPLIED) {
        continue;
      }
      if (out.size() < limit) out.push_back(c.info());
    }
    if (!resp.more() || resp.kvs_size() == 0) break;
    end = resp.kvs(resp.kvs_size() - 1).key();  // range_end is exclusive
  }
  return out;
}

absl::StatusOr<std::vector<gwmirror::v1::CheckpointInfo>>
EtcdStateStore::Unfinished() const {
  std::vector<uint64_t> ids;
  {
    absl::MutexLock l(&mu_);
    ids.assign(meta_.unfinished().begin(), meta_.unfinished().end());
  }
  std::sort(ids.begin(), ids.end());
  std::vector<gwmirror::v1::CheckpointInfo> out;
  for (uint64_t id : ids) {
    ASSIGN_OR_RETURN(StoredCheckpoint c, LoadCheckpoint(id));
    out.push_back(c.info());
  }
  return out;
}

absl::StatusOr<std::map<std::string, uint64_t>> EtcdStateStore::CountByState()
    const {
  absl::MutexLock l(&mu_);
  return std::map<std::string, uint64_t>(meta_.counts().begin(),
                                         meta_.counts().end());
}

absl::StatusOr<uint64_t> EtcdStateStore::BeginDrill(int64_t now_ms) {
  absl::MutexLock l(&mu_);
  StoredMeta next = meta_;
  const uint64_t id = meta_.last_drill() + 1;
  next.set_last_drill(id);
  gwmirror::v1::DrillReport started;  // id 0: not finished
  started.set_started_unix_ms(now_ms);
  RETURN_IF_ERROR(Write(next, {{DrillKey(id), started.SerializeAsString()}}));
  return id;
}

absl::Status EtcdStateStore::RecordDrill(
    const gwmirror::v1::DrillReport& report) {
  absl::MutexLock l(&mu_);
  if (report.id() == 0 || report.id() > meta_.last_drill()) {
    return absl::NotFoundError(absl::StrCat("no drill ", report.id()));
  }
  return Write(meta_, {{DrillKey(report.id()), report.SerializeAsString()}});
}

absl::StatusOr<std::vector<gwmirror::v1::DrillReport>>
EtcdStateStore::ListDrills(size_t limit) const {
  const std::string start = prefix_ + "drills/";
  etcdserverpb::RangeRequest r;
  r.set_key(start);
  r.set_range_end(EtcdPrefixEnd(start));
  r.set_sort_order(etcdserverpb::RangeRequest::DESCEND);
  r.set_sort_target(etcdserverpb::RangeRequest::KEY);
  r.set_limit(static_cast<int64_t>(limit));
  ASSIGN_OR_RETURN(auto resp, client_->Range(r));
  std::vector<gwmirror::v1::DrillReport> out;
  for (const auto& kv : resp.kvs()) {
    gwmirror::v1::DrillReport d;
    uint64_t id = 0;
    if (!d.ParseFromString(kv.value()) ||
        !absl::SimpleAtoi(absl::string_view(kv.key()).substr(start.size()),
                          &id)) {
      return absl::DataLossError(
          absl::StrCat("etcd key ", kv.key(), ": unreadable drill record"));
    }
    // A drill the coordinator did not live to finish.
    if (d.id() == 0) {
      d.set_id(id);
      d.set_error("unfinished (the coordinator stopped during the drill)");
    }
    out.push_back(std::move(d));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> EtcdStateStore::UnappliedSlots(
    uint64_t id) const {
  absl::StatusOr<StoredCheckpoint> c = LoadCheckpoint(id);
  if (absl::IsNotFound(c.status())) return std::vector<std::string>();
  RETURN_IF_ERROR(c.status());
  std::set<std::string> applied(c->applied_slots().begin(),
                                c->applied_slots().end());
  std::vector<std::string> out;
  for (const auto& [slot, digest] : c->info().digests()) {
    if (!applied.contains(slot)) out.push_back(slot);
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<uint64_t> EtcdStateStore::Forget(
    uint64_t below, const std::set<uint64_t>& keep) {
  absl::MutexLock l(&mu_);
  std::set<uint64_t> kept = keep;
  kept.insert(meta_.pins().begin(), meta_.pins().end());
  kept.insert(meta_.unfinished().begin(), meta_.unfinished().end());
  kept.insert(meta_.last_checkpoint());  // The newest stays, as in SQLite.
  // Only finished records lie in the ranges (every unfinished one is
  // kept), so whole key ranges go; `counts` keeps counting them. etcd
  // takes at most 128 operations in one transaction.
  std::vector<std::pair<std::string, std::string>> batch;
  uint64_t deleted = 0;
  for (const auto& [from, to] : ForgettableRanges(below, kept)) {
    batch.emplace_back(CheckpointKey(from), CheckpointKey(to));
    if (batch.size() == 100) {
      RETURN_IF_ERROR(Write(meta_, {}, batch, &deleted));
      batch.clear();
    }
  }
  if (!batch.empty()) RETURN_IF_ERROR(Write(meta_, {}, batch, &deleted));
  return deleted;
}

absl::StatusOr<StateStore::Contents> EtcdStateStore::Export() const {
  Contents out;
  {
    absl::MutexLock l(&mu_);
    out.meta = meta_;
  }
  out.meta.clear_counts();
  out.meta.clear_unfinished();
  // Oldest first, a page at a time.
  auto scan =
      [this](const std::string& dir,
             const std::function<absl::Status(const etcdserverpb::KeyValue&)>&
                 each) {
        const std::string start = prefix_ + dir;
        etcdserverpb::RangeRequest r;
        r.set_key(start);
        r.set_range_end(EtcdPrefixEnd(start));
        r.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
        r.set_sort_target(etcdserverpb::RangeRequest::KEY);
        r.set_limit(500);
        for (;;) {
          ASSIGN_OR_RETURN(auto resp, client_->Range(r));
          for (const auto& kv : resp.kvs()) RETURN_IF_ERROR(each(kv));
          if (!resp.more() || resp.kvs_size() == 0) return absl::OkStatus();
          r.set_key(resp.kvs(resp.kvs_size() - 1).key() + std::string(1, '\0'));
        }
      };
  // What `counts` counts beyond the records is what was forgotten.
  std::map<std::string, uint64_t> forgotten;
  {
    absl::MutexLock l(&mu_);
    forgotten.insert(meta_.counts().begin(), meta_.counts().end());
  }
  RETURN_IF_ERROR(scan("checkpoints/", [&](const etcdserverpb::KeyValue& kv) {
    StoredCheckpoint& c = out.checkpoints.emplace_back();
    if (!c.ParseFromString(kv.value()) || c.info().id() == 0) {
      return absl::DataLossError(
          absl::StrCat("etcd key ", kv.key(), ": not a checkpoint record"));
    }
    uint64_t& n = forgotten[StateName(c.info().state())];
    n -= std::min<uint64_t>(n, 1);
    return absl::OkStatus();
  }));
  out.meta.clear_forgotten();
  for (const auto& [state, n] : forgotten) {
    if (n > 0) (*out.meta.mutable_forgotten())[state] = n;
  }
  const size_t skip = prefix_.size() + std::string("drills/").size();
  RETURN_IF_ERROR(scan("drills/", [&](const etcdserverpb::KeyValue& kv) {
    uint64_t id = 0;
    gwmirror::v1::DrillReport d;
    if (!d.ParseFromString(kv.value()) ||
        !absl::SimpleAtoi(absl::string_view(kv.key()).substr(skip), &id)) {
      return absl::DataLossError(
          absl::StrCat("etcd key ", kv.key(), ": unreadable drill record"));
    }
    out.drills.emplace_back(id, std::move(d));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status EtcdStateStore::Import(const Contents& contents) {
  RETURN_IF_ERROR(ValidateContents(contents));
  absl::MutexLock l(&mu_);
  RETURN_IF_ERROR(LeadLocked());
  if (meta_.last_checkpoint() != 0 || meta_.last_drill() != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the state under ", prefix_,
                     " already records checkpoints or drills: a migration "
                     "only fills an empty state"));
  }
  // Every batch is fenced like a write (the lead held, P meta unchanged);
  // P meta itself, which makes the records count, goes last.
  auto fenced = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    etcdserverpb::TxnRequest req;
    Fence(req, prefix_ + "leader", Compare::CREATE)
        ->set_create_revision(leader_revision_);
    Fence(req, prefix_ + "meta", Compare::MOD)
        ->set_mod_revision(meta_revision_);
    return req;
  };
  auto commit = [this](const etcdserverpb::TxnRequest& req) -> absl::Status {
    ASSIGN_OR_RETURN(auto resp, client_->Txn(req));
    if (!resp.succeeded()) {
      return absl::AbortedError(absl::StrCat(
          "the state under ", prefix_,
          " changed during the migration (another coordinator led?); "
          "nothing counts until its last step: run it again"));
    }
    return absl::OkStatus();
  };
  // What an interrupted migration left is cleared first.
  {
    etcdserverpb::TxnRequest req = fenced();
    for (const char* dir : {"checkpoints/", "drills/"}) {
      auto* del = req.add_success()->mutable_request_delete_range();
      del->set_key(prefix_ + dir);
      del->set_range_end(EtcdPrefixEnd(prefix_ + dir));
    }
    RETURN_IF_ERROR(commit(req));
  }
  StoredMeta next = contents.meta;
  next.clear_counts();
  next.clear_unfinished();
  // `counts` counts forgotten records too.
  next.mutable_counts()->insert(contents.meta.forgotten().begin(),
                                contents.meta.forgotten().end());
  next.clear_forgotten();
  etcdserverpb::TxnRequest batch = fenced();
  size_t bytes = 0;
  auto put = [&](std::string key, std::string value) -> absl::Status {
    bytes += key.size() + value.size();
    AddPut(batch, key, value);
    // etcd takes at most 128 operations and 1.5 MiB in one request.
    if (batch.success_size() >= 100 || bytes >= (1 << 20)) {
      RETURN_IF_ERROR(commit(batch));
      batch = fenced();
      bytes = 0;
    }
    return absl::OkStatus();
  };
  for (const StoredCheckpoint& c : contents.checkpoints) {
    Move(next, c.info().id(), gwmirror::v1::CHECKPOINT_STATE_UNSPECIFIED,
         c.info().state());
    next.set_last_checkpoint(std::max(next.last_checkpoint(), c.info().id()));
    RETURN_IF_ERROR(put(CheckpointKey(c.info().id()), c.SerializeAsString()));
  }
  for (const auto& [id, report] : contents.drills) {
    next.set_last_drill(std::max(next.last_drill(), id));
    RETURN_IF_ERROR(put(DrillKey(id), report.SerializeAsString()));
  }
  if (batch.success_size() > 0) RETURN_IF_ERROR(commit(batch));
  return Write(next, {});
}

}  // namespace gwmirror
