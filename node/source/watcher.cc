#include "node/source/watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/path.h"
#include "common/thread_name.h"
#include "node/scanner.h"

namespace gwmirror {
namespace {

// What a queue overflow counts as: a burst too big to tell.
constexpr int kManyPaths = 1 << 20;

constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_CLOSE_WRITE | IN_MODIFY |
                           IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB |
                           IN_DELETE_SELF | IN_MOVE_SELF | IN_DONT_FOLLOW |
                           IN_ONLYDIR;

}  // namespace

ChangeWatcher::ChangeWatcher(gwmirror::v1::NodeConfig config, Options options)
    : config_(std::move(config)),
      options_(std::move(options)),
      host_root_(config_.host_root().empty() ? "/" : config_.host_root()) {
  for (const auto& r : config_.roots()) filters_.emplace_back(r);
  root_wd_.assign(config_.roots_size(), -1);
}

ChangeWatcher::~ChangeWatcher() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(stop_fd_.get(), &one, sizeof(one));
    thread_.join();
  }
}

absl::Status ChangeWatcher::Start() {
  fd_.Reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd_.valid()) return ErrnoStatus(errno, "inotify_init1");
  stop_fd_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_.valid()) return ErrnoStatus(errno, "eventfd");
  {
    absl::MutexLock l(&events_mu_);
    dirty_.all = true;  // Nothing has been scanned yet.
    for (int i = 0; i < config_.roots_size(); ++i)
      WatchTree(config_.roots(i).path(), i);
  }
  thread_ = std::thread([this] {
    NameThisThread("gwm-watcher");
    Run();
  });
  return absl::OkStatus();
}

void ChangeWatcher::WatchTree(const std::string& dir, int root_index) {
  std::string full = JoinPath(host_root_, dir);
  int wd = inotify_add_watch(fd_.get(), full.c_str(), kMask);
  if (wd < 0) {
    if (errno == ENOSPC || errno == ENOMEM) {
      absl::MutexLock l(&mu_);
      if (!degraded_) {
        Logf(LogLevel::kWarning, "source",
             "slot=%s inotify watch limit reached at %s: polling every %s "
             "(raise fs.inotify.max_user_watches)",
             config_.slot(), dir, absl::FormatDuration(options_.poll_interval));
      }
      degraded_ = true;
    }
    return;  // ENOENT, ENOTDIR: gone or not a directory any more.
  }
  dirs_[wd] = {dir, root_index};
  if (dir == config_.roots(root_index).path()) root_wd_[root_index] = wd;
  auto names = ListDir(full);
  if (!names.ok()) return;
  const std::string& root = config_.roots(root_index).path();
  for (const std::string& name : *names) {
    std::string child = dir + "/" + name;
    struct stat st;
    if (lstat(JoinPath(host_root_, child).c_str(), &st) != 0 ||
        !S_ISDIR(st.st_mode)) {
      continue;
    }
    std::string rel = child.substr(root.size() + 1);
    if (filters_[root_index].Excluded(rel, name, child)) continue;
    WatchTree(child, root_index);
  }
}

bool ChangeWatcher::RootWatched(int root_index) const {
  // Watch descriptors are not reused soon: a live entry under the root's
  // descriptor naming the root is that root's watch.
  auto it = dirs_.find(root_wd_[root_index]);
  return it != dirs_.end() &&
         it->second.first == config_.roots(root_index).path();
}

void ChangeWatcher::UnwatchTree(const std::string& dir) {
  for (auto it = dirs_.begin(); it != dirs_.end();) {
    if (PathIsWithin(it->second.first, dir)) {
      inotify_rm_watch(fd_.get(), it->first);
      it = dirs_.erase(it);
    } else {
      ++it;
    }
  }
}

void ChangeWatcher::MarkDirty(const std::string& path, bool subtree) {
  // Past this many paths, a whole walk is cheaper than the bookkeeping.
  constexpr size_t kMaxPaths = 100'000;
  if (dirty_.all) return;
  if (dirty_.paths.size() >= kMaxPaths) {
    dirty_.all = true;
    dirty_.paths.clear();
    return;
  }
  bool& s = dirty_.paths[path];
  s = s || subtree;
}

void ChangeWatcher::Changed(int paths, uint64_t bytes) {
  bool first = false;
  {
    absl::MutexLock l(&mu_);
    pending_.changed_paths += paths;
    pending_.changed_bytes += bytes;
    absl::Time now = absl::Now();
    first = pending_.since == absl::InfinitePast() ||
            pending_.unstaged_since == absl::InfinitePast();
    if (pending_.since == absl::InfinitePast()) pending_.since = now;
    if (pending_.unstaged_since == absl::InfinitePast()) {
      pending_.unstaged_since = now;
    }
    pending_.last_change = now;
  }
  if (first && options_.on_change) options_.on_change();
}

void ChangeWatcher::Run() {
  absl::Time next_rescan = absl::Now() + options_.rescan_interval;
  for (;;) {
    absl::Duration wait = next_rescan - absl::Now();
    if (degraded()) wait = std::min(wait, options_.poll_interval);
    struct pollfd fds[2] = {{fd_.get(), POLLIN, 0},
                            {stop_fd_.get(), POLLIN, 0}};
    int n = poll(fds, 2,
                 static_cast<int>(
                     std::max<int64_t>(0, absl::ToInt64Milliseconds(wait))));
    if (n < 0 && errno != EINTR) return;
    if (fds[1].revents & POLLIN) return;
    absl::MutexLock l(&events_mu_);
    if (absl::Now() >= next_rescan || (n == 0 && degraded())) {
      // Safety net: a whole walk at the next cut, whatever inotify said.
      dirty_.all = true;
      Changed(0);
      next_rescan = absl::Now() + options_.rescan_interval;
    }
    ReadEvents();
  }
}

void ChangeWatcher::ReadEvents() {
  alignas(struct inotify_event) char buf[64 << 10];
  for (;;) {
    ssize_t len = read(fd_.get(), buf, sizeof(buf));
    if (len <= 0) break;
    // Tests make the kernel's queue "overflow" here (fault point
    // "watch:overflow"): the batch is lost, as the kernel would lose it.
    bool injected = !FaultPoint("watch:overflow").ok();
    for (char* p = buf; p < buf + len;) {
      auto* ev = reinterpret_cast<struct inotify_event*>(p);
      p += sizeof(struct inotify_event) + ev->len;
      if (injected) {
        ev->mask = IN_Q_OVERFLOW;
        p = buf + len;
      }
      if (ev->mask & IN_Q_OVERFLOW) {
        Logf(LogLevel::kWarning, "source",
             "slot=%s inotify queue overflowed: the next cut rescans "
             "everything",
             config_.slot());
        dirty_.all = true;
        dirty_.paths.clear();
        Changed(kManyPaths);
        // Directories created meanwhile were missed: watch them now.
        for (int i = 0; i < config_.roots_size(); ++i) {
          WatchTree(config_.roots(i).path(), i);
        }
        continue;
      }
      auto it = dirs_.find(ev->wd);
      if (it == dirs_.end()) continue;
      if (ev->mask & IN_IGNORED) {
        dirs_.erase(it);
        continue;
      }
      auto [dir, index] = it->second;
      const std::string& root = config_.roots(index).path();
      if (ev->len == 0 || ev->name[0] == '\0') {
        // The directory itself: its attributes, or it went away. A root
        // that moved away is watched again if it comes back (TakeDirty).
        const bool gone = ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF);
        if ((ev->mask & IN_MOVE_SELF) && dir == root) UnwatchTree(dir);
        MarkDirty(dir, gone);
        Changed();
        continue;
      }
      std::string name(ev->name);
      std::string path = dir + "/" + name;
      if (options_.ignore.count(path)) continue;
      std::string rel = path.substr(root.size() + 1);
      if (filters_[index].Excluded(rel, name, path)) continue;
      bool is_dir = ev->mask & IN_ISDIR;
      if (!is_dir && !filters_[index].Included(rel, name, path)) continue;
      bool subtree = false;
      if (is_dir && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
        // Watched before it is read, so nothing written into it is missed.
        WatchTree(path, index);
        subtree = true;
      } else if (is_dir && (ev->mask & IN_MOVED_FROM)) {
        // Its watches would go on naming it by its old path.
        UnwatchTree(path);
        subtree = true;
      }
      MarkDirty(path, subtree);
      // A name came or went: the directory's own mtime moved.
      if (ev->mask & (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) {
        MarkDirty(dir, false);
      }
      // The file's size now, so the node can tell a small burst from one
      // worth pre-streaming (a file counts again at each event: more, not
      // less).
      struct stat st;
      uint64_t bytes = 0;
      if (!is_dir && lstat(JoinPath(host_root_, path).c_str(), &st) == 0 &&
          S_ISREG(st.st_mode)) {
        bytes = st.st_size;
      }
      if (!is_dir) Writing(path, ev->mask);
      Changed(1, bytes);
    }
  }
}

ChangeWatcher::Dirty ChangeWatcher::TakeDirty() {
  absl::MutexLock l(&events_mu_);
  ReadEvents();
  for (int i = 0; i < config_.roots_size(); ++i) {
    if (RootWatched(i)) continue;
    WatchTree(config_.roots(i).path(), i);
    // It appeared: read all of it.
    if (RootWatched(i)) MarkDirty(config_.roots(i).path(), true);
  }
  Dirty out = std::move(dirty_);
  dirty_ = Dirty();
  out.incomplete = degraded();
  return out;
}

void ChangeWatcher::Writing(const std::string& path, uint32_t mask) {
  absl::MutexLock l(&mu_);
  if (mask & (IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM)) {
    writing_.erase(path);
  } else if (mask & (IN_CREATE | IN_MODIFY)) {
    // A file held open for good (a log) stops counting after a second; a
    // bounded map however many files a burst opens.
    if (writing_.size() >= 100000) writing_.clear();
    writing_.emplace(path, absl::Now());
  }
}

ChangeWatcher::Pending ChangeWatcher::Snapshot() const {
  absl::MutexLock l(&mu_);
  Pending p = pending_;
  const absl::Time recent = absl::Now() - absl::Seconds(1);
  for (const auto& [path, since] : writing_) p.writing += since > recent;
  return p;
}

namespace {
// Changes since the scan began may or may not be in it.
void Advance(absl::Time* since, absl::Time scan_start, absl::Time last) {
  if (last < scan_start) {
    *since = absl::InfinitePast();
  } else if (*since != absl::InfinitePast()) {
    *since = std::max(*since, scan_start);
  }
}
}  // namespace

void ChangeWatcher::Staged(absl::Time scan_start) {
  absl::MutexLock l(&mu_);
  Advance(&pending_.since, scan_start, pending_.last_change);
  Advance(&pending_.unstaged_since, scan_start, pending_.last_change);
  pending_.changed_paths = pending_.changed_bytes = 0;
  if (pending_.since == absl::InfinitePast()) {
    pending_.files = pending_.bytes = 0;
  }
}

void ChangeWatcher::Prestaged(absl::Time scan_start, uint64_t files,
                              uint64_t bytes) {
  absl::MutexLock l(&mu_);
  Advance(&pending_.unstaged_since, scan_start, pending_.last_change);
  pending_.changed_paths = pending_.changed_bytes = 0;
  pending_.files = files;
  pending_.bytes = bytes;
}

bool ChangeWatcher::degraded() const {
  absl::MutexLock l(&mu_);
  return degraded_;
}

}  // namespace gwmirror
