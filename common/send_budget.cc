#include "common/send_budget.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

// The bucket holds at most this much of the cap (and at least kMinBurst):
// enough to keep a stream moving between takes, too little to let a burst
// swamp a thin link.
constexpr double kBurstSeconds = 0.05;
constexpr double kMinBurst = 16 << 10;
// A waiter looks again at least this often (the cap may have changed).
constexpr absl::Duration kMaxWait = absl::Milliseconds(200);

struct Unit {
  const char* name;
  double bytes;
};
// Longest suffixes first, so "kbit" is not read as "bit" after a "k".
constexpr Unit kUnits[] = {
    {"kibit", 1024 / 8.0},
    {"mibit", 1048576 / 8.0},
    {"gibit", 1073741824 / 8.0},
    {"kbit", 1e3 / 8},
    {"mbit", 1e6 / 8},
    {"gbit", 1e9 / 8},
    {"bit", 1 / 8.0},
    {"kib", 1024.0},
    {"mib", 1048576.0},
    {"gib", 1073741824.0},
    {"kb", 1e3},
    {"mb", 1e6},
    {"gb", 1e9},
    {"b", 1},
};

constexpr const char* kDays[] = {"mon", "tue", "wed", "thu",
                                 "fri", "sat", "sun"};

absl::StatusOr<int> DayOf(absl::string_view name) {
  for (int d = 0; d < 7; ++d) {
    if (absl::AsciiStrToLower(name) == kDays[d]) return d;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "\"", name, "\" is not a day (mon, tue, wed, thu, fri, sat, sun)"));
}

// "mon-fri", "sat,sun", "fri-mon" (a range may wrap past Sunday).
absl::StatusOr<uint8_t> DaysOf(absl::string_view text) {
  if (text.empty()) return 0x7f;
  uint8_t days = 0;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    std::pair<absl::string_view, absl::string_view> range =
        absl::StrSplit(part, absl::MaxSplits('-', 1));
    ASSIGN_OR_RETURN(int first, DayOf(absl::StripAsciiWhitespace(range.first)));
    int last = first;
    if (absl::StrContains(part, '-')) {
      ASSIGN_OR_RETURN(last, DayOf(absl::StripAsciiWhitespace(range.second)));
    }
    for (int d = first;; d = (d + 1) % 7) {
      days |= 1 << d;
      if (d == last) break;
    }
  }
  return days;
}

// "HH:MM" as minutes of the day.
absl::StatusOr<int> MinuteOf(absl::string_view text) {
  std::pair<absl::string_view, absl::string_view> hm =
      absl::StrSplit(text, absl::MaxSplits(':', 1));
  int h = 0, m = 0;
  if (hm.first.size() != 2 || hm.second.size() != 2 ||
      !absl::SimpleAtoi(hm.first, &h) || !absl::SimpleAtoi(hm.second, &m) ||
      h < 0 || h > 23 || m < 0 || m > 59) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text, "\" is not a time of day (HH:MM, 00:00-23:59)"));
  }
  return h * 60 + m;
}

absl::Status InField(absl::Status st, absl::string_view field) {
  if (st.ok()) return st;
  return absl::InvalidArgumentError(
      absl::StrCat("bandwidth.", field, ": ", st.message()));
}

}  // namespace

absl::StatusOr<uint64_t> ParseRate(absl::string_view text) {
  std::string t = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  absl::string_view rest = t;
  absl::ConsumeSuffix(&rest, "/s");
  double per = 1;
  for (const Unit& u : kUnits) {
    if (absl::ConsumeSuffix(&rest, u.name)) {
      per = u.bytes;
      break;
    }
  }
  rest = absl::StripAsciiWhitespace(rest);
  double n = 0;
  if (rest.empty() || !absl::SimpleAtod(rest, &n) || !std::isfinite(n) ||
      n < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text,
        "\" is not a rate: a number and a unit, such as \"20mbit\", "
        "\"2.5MB\" or \"512KiB\" (per second), or bytes per second"));
  }
  const double bytes = n * per;
  if (bytes < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text,
        "\" is a rate of zero: to stop sending, hold the cuts instead "
        "(a zero rate would stall a checkpoint half-pushed)"));
  }
  if (bytes > 1e15) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is beyond any link (over 1 PB/s)"));
  }
  return static_cast<uint64_t>(bytes);
}

absl::StatusOr<SendPolicy> SendPolicy::From(const gwmirror::v1::Bandwidth& b) {
  SendPolicy p;
  p.zone_ = absl::LocalTimeZone();
  if (!b.time_zone().empty() && !absl::LoadTimeZone(b.time_zone(), &p.zone_)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bandwidth.time_zone: \"", b.time_zone(),
                     "\" is not a known time zone (e.g. \"Europe/Paris\")"));
  }
  if (!b.max_send_rate().empty()) {
    auto rate = ParseRate(b.max_send_rate());
    RETURN_IF_ERROR(InField(rate.status(), "max_send_rate"));
    p.base_ = *rate;
  }
  for (int i = 0; i < b.schedule_size(); ++i) {
    const gwmirror::v1::RateWindow& w = b.schedule(i);
    const std::string at = absl::StrCat("schedule[", i, "]");
    Window win;
    auto days = DaysOf(w.days());
    RETURN_IF_ERROR(InField(days.status(), at + ".days"));
    win.days = *days;
    auto from = MinuteOf(w.from());
    RETURN_IF_ERROR(InField(from.status(), at + ".from"));
    auto to = MinuteOf(w.to());
    RETURN_IF_ERROR(InField(to.status(), at + ".to"));
    win.from = *from;
    win.to = *to;
    if (w.rate().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bandwidth.", at, ".rate: missing (e.g. \"20mbit\")"));
    }
    auto rate = ParseRate(w.rate());
    RETURN_IF_ERROR(InField(rate.status(), at + ".rate"));
    win.rate = *rate;
    p.windows_.push_back(win);
  }
  return p;
}

uint64_t SendPolicy::CapAt(absl::Time t) const {
  if (windows_.empty()) return base_;
  const absl::CivilSecond cs = absl::ToCivilSecond(t, zone_);
  const int minute = cs.hour() * 60 + cs.minute();
  const int today = static_cast<int>(absl::GetWeekday(cs));
  const int yesterday = (today + 6) % 7;
  for (const Window& w : windows_) {
    auto on = [&](int day) { return (w.days >> day) & 1; };
    const bool in = w.from < w.to
                        ? on(today) && minute >= w.from && minute < w.to
                        // Past midnight: the evening of a listed day, or the
                        // early hours after one.
                        : (on(today) && minute >= w.from) ||
                              (on(yesterday) && minute < w.to);
    if (in) return w.rate;
  }
  return base_;
}

void SendBudget::SetPolicy(SendPolicy policy) {
  absl::MutexLock l(&mu_);
  policy_ = std::move(policy);
  cap_at_ = absl::InfinitePast();
}

uint64_t SendBudget::CapLocked(absl::Time now) const {
  if (now - cap_at_ >= absl::Seconds(1) || now < cap_at_) {
    cap_ = policy_.CapAt(now);
    cap_at_ = now;
  }
  return cap_;
}

void SendBudget::Take(uint64_t bytes) {
  for (;;) {
    absl::Duration wait;
    {
      absl::MutexLock l(&mu_);
      const absl::Time now = clock_->Now();
      const uint64_t cap = CapLocked(now);
      if (cap != filled_cap_) {
        // A new cap starts from an empty bucket, keeping any debt.
        tokens_ = std::min(tokens_, 0.0);
        if (cap == 0) tokens_ = 0;
        filled_cap_ = cap;
        filled_ = now;
      }
      if (cap != 0 && now > filled_) {
        const double burst = std::max(cap * kBurstSeconds, kMinBurst);
        tokens_ = std::min(
            burst, tokens_ + absl::ToDoubleSeconds(now - filled_) * cap);
      }
      filled_ = std::max(filled_, now);
      if (cap == 0 || tokens_ >= 0) {
        if (cap != 0) tokens_ -= static_cast<double>(bytes);
        const int64_t sec = absl::ToUnixSeconds(now);
        auto& slot = sent_[sec % sent_.size()];
        if (slot.first != sec) slot = {sec, 0};
        slot.second += bytes;
        return;
      }
      wait = absl::Seconds(-tokens_ / cap);
    }
    clock_->SleepFor(std::min(wait, kMaxWait));
  }
}

uint64_t SendBudget::CapNow() const {
  absl::MutexLock l(&mu_);
  return CapLocked(clock_->Now());
}

uint64_t SendBudget::RecentRate() const {
  absl::MutexLock l(&mu_);
  // The last kRateWindow whole seconds (the current one is still filling).
  const int64_t now = absl::ToUnixSeconds(clock_->Now());
  uint64_t sum = 0;
  for (const auto& [sec, n] : sent_) {
    if (sec < now && sec >= now - kRateWindow) sum += n;
  }
  return sum / kRateWindow;
}

}  // namespace gwmirror
