// ThreadSanitizer builds only (GWMIRROR_TSAN): tells TSan about Abseil's
// locks. Debian's libabsl is not built with TSan, so TSan cannot see an
// absl::Mutex being taken or released and would report every handoff of
// data guarded by one as a race. This file defines the Abseil
// synchronization entry points our code calls (absl::Mutex, CondVar,
// Notification) in each test binary, which takes precedence over the
// shared library's definition: each tells TSan what the call does to the
// lock (its mutex interface, sanitizer/tsan_interface.h) and calls the
// library's own, found with dlsym(RTLD_NEXT). A condition a wait hands to
// Abseil is wrapped so that its evaluation, on whichever thread Abseil
// runs it, is ordered with the lock's holders. Only calls made from this
// program are annotated (gRPC calls absl::Mutex through here too, and the
// rest of its synchronization is as invisible to TSan).
// tests/tsan/suppressions.txt names what is still silenced, and why.
#include <dlfcn.h>
#include <link.h>
#include <sanitizer/tsan_interface.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace {

#define GWM_STR2(x) #x
#define GWM_STR(x) GWM_STR2(x)

// The library's definition of the member whose mangled name, after
// "absl::<inline namespace>::", is `rest`.
void* Real(const char* rest) {
  const char* ns = GWM_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name =
      std::string(rest[0] == 'K' ? "_ZNK4absl" : "_ZN4absl") +
      std::to_string(std::strlen(ns)) + ns + (rest[0] == 'K' ? rest + 1 : rest);
  void* f = dlsym(RTLD_NEXT, name.c_str());
  if (f == nullptr) {
    std::fprintf(stderr, "tsan/absl_sync: %s not found in libabsl\n",
                 name.c_str());
    std::abort();
  }
  return f;
}

template <typename Fn>
Fn RealFn(const char* rest) {
  return reinterpret_cast<Fn>(Real(rest));
}

using MutexFn = void (*)(absl::Mutex*);
using MutexBoolFn = bool (*)(absl::Mutex*);
using CondFn = void (*)(absl::Mutex*, const absl::Condition&);
using CondDeadlineFn = bool (*)(absl::Mutex*, const absl::Condition&,
                                absl::Time);
using CondTimeoutFn = bool (*)(absl::Mutex*, const absl::Condition&,
                               absl::Duration);

// Whether `pc` lies in this program's own code (not in a shared library).
bool InProgram(const void* pc) {
  struct Range {
    uintptr_t begin = UINTPTR_MAX, end = 0;
  };
  static const Range range = [] {
    Range r;
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* data) {
          auto* r = static_cast<Range*>(data);
          for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
            r->begin =
                std::min<uintptr_t>(r->begin, info->dlpi_addr + ph.p_vaddr);
            r->end = std::max<uintptr_t>(
                r->end, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
          }
          return 1;  // The first object is the program itself.
        },
        &r);
    return r;
  }();
  const auto a = reinterpret_cast<uintptr_t>(pc);
  return a >= range.begin && a < range.end;
}

// Only our own calls are annotated. gRPC, whose other synchronization TSan
// cannot see either, calls absl::Mutex through these definitions too; and
// inside libabsl one entry point calls another (AwaitWithTimeout calls
// AwaitWithDeadline), which comes back through here: only the outermost
// call on a thread, made from this program, annotates.
thread_local int depth = 0;
class Outer {
 public:
  explicit Outer(const void* caller)
      : outer_(depth++ == 0 && InProgram(caller)) {}
  ~Outer() { --depth; }
  Outer(const Outer&) = delete;
  Outer& operator=(const Outer&) = delete;
  explicit operator bool() const { return outer_; }

 private:
  const bool outer_;
};

// Brackets `call` (the library's definition) with TSan's view of it:
// `before` and `after` run only for an outermost call of ours.
template <typename Call, typename Before, typename After>
auto Annotated(const void* caller, Before before, Call call, After after) {
  Outer outer(caller);
  if (outer) before();
  auto r = call();
  if (outer) after(r);
  return r;
}

#define GWM_CALLER __builtin_return_address(0)

// A condition as libabsl evaluates it: on the waiting thread, or on the
// thread that unlocks, always with the lock really held, but not in TSan's
// view of the waiter (its wait released the lock). Each evaluation
// acquires the mutex's history first and publishes its reads after, as
// holding the lock would.
struct Evaluated {
  const absl::Condition* cond;
  absl::Mutex* mu;
  static bool Eval(Evaluated* e) {
    __tsan_acquire(e->mu);
    const bool met = e->cond->Eval();
    __tsan_release(e->mu);
    return met;
  }
};

// The lock operations as TSan's mutex interface takes them.
auto PreLock(void* mu, unsigned flags = 0) {
  return [=] { __tsan_mutex_pre_lock(mu, flags); };
}
auto PostLock(void* mu, unsigned flags = 0) {
  return [=](auto) { __tsan_mutex_post_lock(mu, flags, 0); };
}
auto Released(void* mu) {
  return [=] {
    __tsan_mutex_pre_unlock(mu, 0);
    __tsan_mutex_post_unlock(mu, 0);
  };
}
// A notification waited for (when it came).
auto Acquired(const void* n) {
  return [=](bool notified) {
    if (notified) __tsan_acquire(const_cast<void*>(n));
  };
}
auto Held(void* mu) {
  return [=](auto) {
    __tsan_mutex_pre_lock(mu, 0);
    __tsan_mutex_post_lock(mu, 0, 0);
  };
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

// A mutex's memory may hold another one later (on the stack, say): TSan
// forgets this one with it.
Mutex::~Mutex() {
  static const auto real = RealFn<MutexFn>("5MutexD2Ev");
  __tsan_mutex_destroy(this, 0);
  real(this);
}

void Mutex::Lock() {
  static const auto real = RealFn<MutexFn>("5Mutex4LockEv");
  Annotated(
      GWM_CALLER, PreLock(this), [&] { return (real(this), 0); },
      PostLock(this));
}

void Mutex::Unlock() {
  static const auto real = RealFn<MutexFn>("5Mutex6UnlockEv");
  Annotated(
      GWM_CALLER, [&] { __tsan_mutex_pre_unlock(this, 0); },
      [&] { return (real(this), 0); },
      [&](int) { __tsan_mutex_post_unlock(this, 0); });
}

bool Mutex::TryLock() {
  static const auto real = RealFn<MutexBoolFn>("5Mutex7TryLockEv");
  return Annotated(
      GWM_CALLER, PreLock(this, __tsan_mutex_try_lock),
      [&] { return real(this); },
      [&](bool got) {
        __tsan_mutex_post_lock(
            this, got ? __tsan_mutex_try_lock : __tsan_mutex_try_lock_failed,
            0);
      });
}

void Mutex::ReaderLock() {
  static const auto real = RealFn<MutexFn>("5Mutex10ReaderLockEv");
  Annotated(
      GWM_CALLER, PreLock(this, __tsan_mutex_read_lock),
      [&] { return (real(this), 0); }, PostLock(this, __tsan_mutex_read_lock));
}

void Mutex::ReaderUnlock() {
  static const auto real = RealFn<MutexFn>("5Mutex12ReaderUnlockEv");
  Annotated(
      GWM_CALLER,
      [&] { __tsan_mutex_pre_unlock(this, __tsan_mutex_read_lock); },
      [&] { return (real(this), 0); },
      [&](int) { __tsan_mutex_post_unlock(this, __tsan_mutex_read_lock); });
}

// The waits below release the lock while they wait and hold it again when
// they return, whatever they return.
void Mutex::Await(const Condition& cond) {
  static const auto real = RealFn<CondFn>("5Mutex5AwaitERKNS0_9ConditionE");
  Evaluated e{&cond, this};
  const Condition wrapped(&Evaluated::Eval, &e);
  Annotated(
      GWM_CALLER, Released(this), [&] { return (real(this, wrapped), 0); },
      Held(this));
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  static const auto real = RealFn<CondDeadlineFn>(
      "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Evaluated e{&cond, this};
  const Condition wrapped(&Evaluated::Eval, &e);
  return Annotated(
      GWM_CALLER, Released(this), [&] { return real(this, wrapped, deadline); },
      Held(this));
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  static const auto real = RealFn<CondTimeoutFn>(
      "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Evaluated e{&cond, this};
  const Condition wrapped(&Evaluated::Eval, &e);
  return Annotated(
      GWM_CALLER, Released(this), [&] { return real(this, wrapped, timeout); },
      Held(this));
}

void Mutex::LockWhen(const Condition& cond) {
  static const auto real = RealFn<CondFn>("5Mutex8LockWhenERKNS0_9ConditionE");
  Evaluated e{&cond, this};
  const Condition wrapped(&Evaluated::Eval, &e);
  Annotated(
      GWM_CALLER, PreLock(this), [&] { return (real(this, wrapped), 0); },
      PostLock(this));
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  static const auto real = RealFn<CondDeadlineFn>(
      "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Evaluated e{&cond, this};
  const Condition wrapped(&Evaluated::Eval, &e);
  return Annotated(
      GWM_CALLER, PreLock(this), [&] { return real(this, wrapped, deadline); },
      PostLock(this));
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  static const auto real = RealFn<CondTimeoutFn>(
      "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Evaluated e{&cond, this};
  const Condition wrapped(&Evaluated::Eval, &e);
  return Annotated(
      GWM_CALLER, PreLock(this), [&] { return real(this, wrapped, timeout); },
      PostLock(this));
}

void CondVar::Wait(Mutex* mu) {
  static const auto real =
      RealFn<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  Annotated(
      GWM_CALLER, Released(mu), [&] { return (real(this, mu), 0); }, Held(mu));
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  static const auto real = RealFn<bool (*)(CondVar*, Mutex*, absl::Time)>(
      "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  return Annotated(
      GWM_CALLER, Released(mu), [&] { return real(this, mu, deadline); },
      Held(mu));
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  static const auto real = RealFn<bool (*)(CondVar*, Mutex*, absl::Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  return Annotated(
      GWM_CALLER, Released(mu), [&] { return real(this, mu, timeout); },
      Held(mu));
}

// What a thread did before Notify happens before what another does after
// its wait for that notification returns.
void Notification::Notify() {
  static const auto real =
      RealFn<void (*)(Notification*)>("12Notification6NotifyEv");
  Annotated(
      GWM_CALLER, [&] { __tsan_release(this); },
      [&] { return (real(this), 0); }, [](int) {});
}

void Notification::WaitForNotification() const {
  static const auto real = RealFn<void (*)(const Notification*)>(
      "K12Notification19WaitForNotificationEv");
  Annotated(
      GWM_CALLER, [] {}, [&] { return (real(this), true); }, Acquired(this));
}

bool Notification::WaitForNotificationWithTimeout(
    absl::Duration timeout) const {
  static const auto real =
      RealFn<bool (*)(const Notification*, absl::Duration)>(
          "K12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  return Annotated(
      GWM_CALLER, [] {}, [&] { return real(this, timeout); }, Acquired(this));
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  static const auto real = RealFn<bool (*)(const Notification*, absl::Time)>(
      "K12Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  return Annotated(
      GWM_CALLER, [] {}, [&] { return real(this, deadline); }, Acquired(this));
}

ABSL_NAMESPACE_END
}  // namespace absl
