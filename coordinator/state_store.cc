#include "coordinator/state_store.h"

#include "common/fd.h"
#include "common/status_macros.h"
#include "coordinator/etcd_state_store.h"
#include "coordinator/sqlite_state_store.h"

namespace gwmirror {

absl::StatusOr<std::unique_ptr<StateStore>> OpenStateStore(
    const gwmirror::v1::CoordinatorConfig& config) {
  if (config.has_etcd()) {
    EtcdStateStore::Options options;
    options.name =
        config.etcd().name().empty() ? config.listen() : config.etcd().name();
    options.active_site = config.initial_active_site();
    ASSIGN_OR_RETURN(auto store,
                     EtcdStateStore::Open(config.etcd(), std::move(options)));
    return std::unique_ptr<StateStore>(std::move(store));
  }
  RETURN_IF_ERROR(MakeDirs(config.state_dir(), 0700));
  ASSIGN_OR_RETURN(auto store,
                   SqliteStateStore::Open(config.state_dir() + "/state.db",
                                          config.initial_active_site()));
  return std::unique_ptr<StateStore>(std::move(store));
}

}  // namespace gwmirror
