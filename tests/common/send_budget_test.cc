#include "common/send_budget.h"

#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace gwmirror {
namespace {

TEST(ParseRateTest, UnitsAreBitsOrBytesPerSecond) {
  EXPECT_EQ(*ParseRate("20mbit"), 2'500'000u);
  EXPECT_EQ(*ParseRate("20 Mbit/s"), 2'500'000u);
  EXPECT_EQ(*ParseRate("1gbit"), 125'000'000u);
  EXPECT_EQ(*ParseRate("100kbit"), 12'500u);
  EXPECT_EQ(*ParseRate("2.5MB"), 2'500'000u);
  EXPECT_EQ(*ParseRate("512KiB"), 524'288u);
  EXPECT_EQ(*ParseRate("1MiB/s"), 1'048'576u);
  EXPECT_EQ(*ParseRate("2500000"), 2'500'000u);
}

TEST(ParseRateTest, BadRatesAreRefusedNamingWhy) {
  for (const char* bad :
       {"", "fast", "20mbps", "20 megabit", "-5mbit", "mbit", "1e400", "nan"}) {
    auto r = ParseRate(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_TRUE(absl::StrContains(r.status().message(), "is not a rate"))
        << bad << ": " << r.status();
  }
  for (const char* zero : {"0", "0mbit", "0.000001kbit"}) {
    auto r = ParseRate(zero);
    ASSERT_FALSE(r.ok()) << zero;
    EXPECT_TRUE(absl::StrContains(r.status().message(), "hold the cuts"))
        << r.status();
  }
}

gwmirror::v1::Bandwidth OfficeHours() {
  gwmirror::v1::Bandwidth b;
  b.set_max_send_rate("100mbit");
  b.set_time_zone("UTC");
  auto* day = b.add_schedule();
  day->set_days("mon-fri");
  day->set_from("08:00");
  day->set_to("18:00");
  day->set_rate("20mbit");
  auto* night = b.add_schedule();
  night->set_days("fri");
  night->set_from("22:00");
  night->set_to("02:00");
  night->set_rate("1gbit");
  return b;
}

absl::Time Utc(int y, int mo, int d, int h, int mi) {
  return absl::FromCivil(absl::CivilMinute(y, mo, d, h, mi),
                         absl::UTCTimeZone());
}

TEST(SendPolicyTest, ScheduleWindowsInTheirZone) {
  auto p = SendPolicy::From(OfficeHours());
  ASSERT_TRUE(p.ok()) << p.status();
  // 2026-12-04 is a Friday.
  EXPECT_EQ(p->CapAt(Utc(2026, 12, 4, 9, 0)), 2'500'000u);
  EXPECT_EQ(p->CapAt(Utc(2026, 12, 4, 7, 59)), 12'500'000u);
  EXPECT_EQ(p->CapAt(Utc(2026, 12, 4, 18, 0)), 12'500'000u);  // `to` is out.
  EXPECT_EQ(p->CapAt(Utc(2026, 12, 5, 9, 0)), 12'500'000u);   // Saturday.
  // Friday night runs past midnight into Saturday, not Thursday's.
  EXPECT_EQ(p->CapAt(Utc(2026, 12, 4, 23, 0)), 125'000'000u);
  EXPECT_EQ(p->CapAt(Utc(2026, 12, 5, 1, 59)), 125'000'000u);
  EXPECT_EQ(p->CapAt(Utc(2026, 12, 4, 1, 0)), 12'500'000u);
  EXPECT_EQ(SendPolicy().CapAt(Utc(2026, 12, 4, 9, 0)), 0u);
}

TEST(SendPolicyTest, BadScheduleIsRefusedNamingTheField) {
  struct Case {
    std::function<void(gwmirror::v1::Bandwidth*)> spoil;
    const char* field;
  };
  const Case cases[] = {
      {[](auto* b) { b->mutable_schedule(0)->set_days("mon-fry"); },
       "schedule[0].days: \"fry\" is not a day"},
      {[](auto* b) { b->mutable_schedule(1)->set_from("25:00"); },
       "schedule[1].from"},
      {[](auto* b) { b->mutable_schedule(0)->set_to("8"); }, "schedule[0].to"},
      {[](auto* b) { b->mutable_schedule(0)->set_rate("0"); },
       "schedule[0].rate"},
      {[](auto* b) { b->mutable_schedule(1)->clear_rate(); },
       "schedule[1].rate: missing"},
      {[](auto* b) { b->set_max_send_rate("lots"); }, "max_send_rate"},
      {[](auto* b) { b->set_time_zone("Mars/Olympus"); }, "time_zone"},
  };
  for (const Case& c : cases) {
    gwmirror::v1::Bandwidth b = OfficeHours();
    c.spoil(&b);
    auto p = SendPolicy::From(b);
    ASSERT_FALSE(p.ok()) << c.field;
    EXPECT_TRUE(absl::StrContains(p.status().message(),
                                  absl::StrCat("bandwidth.", c.field)))
        << p.status();
  }
}

SendPolicy Cap(const char* rate) {
  gwmirror::v1::Bandwidth b;
  b.set_max_send_rate(rate);
  return *SendPolicy::From(b);
}

TEST(SendBudgetTest, HoldsTheCapWhateverTheMessageSizes) {
  SimulatedClock clock;
  SendBudget budget(&clock);
  budget.SetPolicy(Cap("1MB"));
  const absl::Time start = clock.Now();
  uint64_t sent = 0;
  // Alternating 1 MiB chunks and small headers, 30 MB in all.
  for (int i = 0; sent < 30'000'000; ++i) {
    const uint64_t n = i % 2 ? 1 << 20 : 300;
    budget.Take(n);
    sent += n;
  }
  const double seconds = absl::ToDoubleSeconds(clock.Now() - start);
  // Within one message (the last goes out on credit) of the cap.
  EXPECT_NEAR(sent, 1e6 * seconds, 1 << 20) << seconds;
  EXPECT_GT(seconds, 28);
  EXPECT_EQ(budget.CapNow(), 1'000'000u);
  EXPECT_NEAR(budget.RecentRate(), 1e6, 0.25e6);
}

TEST(SendBudgetTest, ACapChangedMidStreamTakesEffect) {
  SimulatedClock clock;
  SendBudget budget(&clock);
  budget.SetPolicy(Cap("1MB"));
  absl::Time t = clock.Now();
  for (int i = 0; i < 10; ++i) budget.Take(1'000'000);
  EXPECT_NEAR(absl::ToDoubleSeconds(clock.Now() - t), 9, 0.2);
  budget.SetPolicy(Cap("4MB"));
  t = clock.Now();
  for (int i = 0; i < 40; ++i) budget.Take(1'000'000);
  EXPECT_NEAR(absl::ToDoubleSeconds(clock.Now() - t), 10, 0.5);
  budget.SetPolicy(SendPolicy());  // Uncapped: no waiting at all.
  t = clock.Now();
  for (int i = 0; i < 100; ++i) budget.Take(1'000'000);
  EXPECT_EQ(clock.Now(), t);
  EXPECT_EQ(budget.CapNow(), 0u);
}

// Real threads on the real clock: several streams share one cap.
TEST(SendBudgetTest, StreamsShareOneCap) {
  SendBudget budget;
  budget.SetPolicy(Cap("4MB"));
  const absl::Time start = absl::Now();
  std::vector<std::thread> streams;
  for (int s = 0; s < 4; ++s) {
    streams.emplace_back([&] {
      for (int i = 0; i < 16; ++i) budget.Take(64 << 10);
    });
  }
  for (auto& t : streams) t.join();
  // 4 MiB at 4 MB/s, less the first burst.
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  EXPECT_GT(seconds, 0.9);
  EXPECT_LT(seconds, 1.6);
}

}  // namespace
}  // namespace gwmirror
