// The status page served at / on the metrics listener: what `gwmirror
// status` says, for people, in a browser. Server-rendered HTML that
// refreshes itself every 5 s; no script and nothing fetched from elsewhere.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/cluster_state.h"
#include "common/protocol_names.h"
#include "coordinator/coordinator.h"

namespace gwmirror {
namespace {

std::string Html(absl::string_view s) {
  return absl::StrReplaceAll(s, {{"&", "&amp;"},
                                 {"<", "&lt;"},
                                 {">", "&gt;"},
                                 {"\"", "&quot;"},
                                 {"'", "&#39;"}});
}

std::string Badge(const std::string& state) {
  return absl::StrCat("<span class=\"state ", Html(state), "\">", Html(state),
                      "</span>");
}

constexpr char kStyle[] = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.5em;margin:0 0 .3em} h2{font-size:1.15em;margin:.2em 0}
.state{padding:.1em .5em;border-radius:.3em;color:#fff;background:#777}
.OK{background:#2a7d2a}.LAGGING,.HELD,.DEGRADED{background:#b26b00}
.STALLED,.PARTITIONED,.BLOCKED{background:#b00020}
.sites{display:flex;gap:1em;flex-wrap:wrap}
.site{flex:1;min-width:22em;border:1px solid #ccc;border-radius:.4em;padding:.6em}
.site.active{border-color:#2a7d2a}
table{border-collapse:collapse;margin:.4em 0}
td,th{border-bottom:1px solid #ddd;padding:.2em .6em;text-align:left;vertical-align:top}
.reason{color:#555}.down{color:#b00020}
svg{border:1px solid #ddd;background:#fafafa}
)";

}  // namespace

void Coordinator::NoteHistory(const gwmirror::v1::ClusterStatus& s) {
  absl::MutexLock l(&history_mu_);
  const absl::Time now = clock_->Now();
  if (!history_.empty() && now - history_.back().at < absl::Seconds(10)) {
    return;
  }
  HistoryPoint p;
  p.at = now;
  p.rpo_ms = s.rpo_ms();
  for (const auto& slot : s.slots()) p.lag_ms[slot.name()] = slot.lag_ms();
  history_.push_back(std::move(p));
  while (!history_.empty() && now - history_.front().at > absl::Hours(1)) {
    history_.pop_front();
  }
}

std::string Coordinator::RenderStatusPage() {
  gwmirror::v1::ClusterStatus s = Status();
  std::map<std::string, gwmirror::v1::TopologyReport> reports;
  for (const NodeView& n : registry_.Snapshot()) {
    reports[n->member->identity()] = *n->report;
  }
  std::string out = absl::StrCat(
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"refresh\" content=\"5\">"
      "<title>gwmirror: ",
      Html(s.state()), "</title><style>", kStyle, "</style></head><body>");
  absl::StrAppend(
      &out, "<h1>gwmirror cluster ", Badge(s.state()), "</h1>",
      s.state_reason().empty()
          ? ""
          : absl::StrCat("<p class=\"reason\" id=\"reason\">",
                         Html(s.state_reason()), "</p>"),
      "<p>epoch ", s.epoch(), " &middot; active site <b>",
      Html(s.active_site()), "</b>",
      s.fenced_site().empty()
          ? ""
          : absl::StrCat(" &middot; fenced site ", Html(s.fenced_site())),
      " &middot; RPO ", SecondsText(s.rpo_ms()),
      " &middot; last consistent checkpoint ",
      s.last_consistent().id() == 0
          ? std::string("none yet")
          : absl::StrCat(s.last_consistent().id(), " (cut ",
                         UnixMsText(s.last_consistent().cut_unix_ms()), ")"),
      " &middot; topology ",
      s.parity() ? "in parity"
                 : absl::StrCat("<b>differs</b>: ",
                                Html(absl::StrJoin(s.differences(), "; "))),
      "</p>");

  // The sites side by side: each host with its groups and instances.
  absl::StrAppend(&out, "<div class=\"sites\">");
  for (const std::string& site : s.sites()) {
    const bool active = site == s.active_site();
    absl::StrAppend(&out, "<section class=\"site", active ? " active" : "",
                    "\" id=\"site-", Html(site), "\"><h2>", Html(site), " (",
                    active ? "active" : "standby", ")</h2><table>",
                    "<tr><th>slot</th><th>node</th><th>version</th>"
                    "<th>groups and instances</th></tr>");
    for (const auto& slot : s.slots()) {
      const auto& n =
          slot.source().site() == site ? slot.source() : slot.replica();
      if (n.identity().empty() || n.site() != site) continue;
      const gwmirror::v1::TopologyReport& r = reports[n.identity()];
      std::vector<std::string> groups;
      for (const auto& g : r.topology().groups()) {
        int instances = 0;
        for (const auto& svc : g.services()) {
          instances += svc.type() == "gateway" ? 1 : 0;
        }
        groups.push_back(
            absl::StrCat(Html(g.name().empty() ? g.id() : g.name()), ": ",
                         instances, " instance", instances == 1 ? "" : "s"));
      }
      absl::StrAppend(
          &out, "<tr><td>", Html(slot.name()), "</td><td",
          n.healthy() ? ">" : " class=\"down\">", Html(n.identity()),
          n.healthy() ? "" : " (down)", "<br><small>", Html(n.address()),
          "</small></td><td>", Html(n.installed_version()), "</td><td>",
          groups.empty() ? "-" : absl::StrJoin(groups, "<br>"), "</td></tr>");
    }
    absl::StrAppend(&out, "</table></section>");
  }
  absl::StrAppend(&out, "</div>");

  // Each slot's state.
  absl::StrAppend(&out,
                  "<h2>Slots</h2><table id=\"slots\"><tr><th>slot</th>"
                  "<th>state</th><th>lag</th><th>pending</th>"
                  "<th>standby applied</th><th>why</th></tr>");
  for (const auto& slot : s.slots()) {
    absl::StrAppend(
        &out, "<tr id=\"slot-", Html(slot.name()), "\"><td>", Html(slot.name()),
        "</td><td>", Badge(slot.state()), "</td><td>",
        SecondsText(slot.lag_ms()), "</td><td>", slot.pending_files(),
        " files, ", slot.pending_bytes(), " bytes</td><td>",
        slot.replica().applied_checkpoint(), "</td><td class=\"reason\">",
        Html(slot.state_reason()),
        slot.has_progress()
            ? absl::StrCat("<br>syncing: ",
                           Html(ProgressLine(slot.progress(), clock_->Now())))
            : "",
        slot.has_drill()
            ? absl::StrCat("<br>drill: ",
                           Html(DrillLine(slot.drill(), clock_->Now())))
            : "",
        "</td></tr>");
  }
  absl::StrAppend(&out, "</table>");

  // RPO and lag over the last hour, as the coordinator saw them.
  std::deque<HistoryPoint> history;
  {
    absl::MutexLock l(&history_mu_);
    history = history_;
  }
  const int w = 720, h = 160;
  const absl::Time now = clock_->Now();
  int64_t top_ms = 1000;
  for (const HistoryPoint& p : history) {
    top_ms = std::max(top_ms, p.rpo_ms);
    for (const auto& [name, lag] : p.lag_ms) top_ms = std::max(top_ms, lag);
  }
  auto line = [&](auto value_of, const char* colour, const std::string& id) {
    std::vector<std::string> points;
    std::string dots;
    for (const HistoryPoint& p : history) {
      int64_t v = value_of(p);
      if (v < 0) continue;
      double x = w - absl::ToDoubleSeconds(now - p.at) / 3600.0 * w;
      double y = h - static_cast<double>(v) / top_ms * (h - 10);
      points.push_back(absl::StrFormat("%.1f,%.1f", x, y));
      // A dot per point: a first point alone shows too.
      absl::StrAppend(
          &dots, absl::StrFormat("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" "
                                 "fill=\"%s\"/>",
                                 x, y, colour));
    }
    return absl::StrCat("<polyline id=\"", Html(id),
                        "\" fill=\"none\" stroke=\"", colour,
                        "\" stroke-width=\"2\" points=\"",
                        absl::StrJoin(points, " "), "\"/>", dots);
  };
  absl::StrAppend(
      &out, "<h2>RPO and lag, last hour</h2>", "<svg id=\"chart\" width=\"", w,
      "\" height=\"", h, "\" viewBox=\"0 0 ", w, " ", h, "\" role=\"img\">",
      line([](const HistoryPoint& p) { return p.rpo_ms; }, "#1f5fbf", "rpo"));
  const char* colours[] = {"#b26b00", "#2a7d2a", "#7a2ab2", "#b00020"};
  int k = 0;
  std::vector<std::string> legend = {
      "<span style=\"color:#1f5fbf\">RPO</span>"};
  for (const auto& slot : s.slots()) {
    const char* colour = colours[k++ % 4];
    const std::string name = slot.name();
    absl::StrAppend(&out, line(
                              [&name](const HistoryPoint& p) {
                                auto it = p.lag_ms.find(name);
                                return it == p.lag_ms.end() ? int64_t{-1}
                                                            : it->second;
                              },
                              colour, "lag-" + name));
    legend.push_back(absl::StrCat("<span style=\"color:", colour, "\">lag of ",
                                  Html(name), "</span>"));
  }
  absl::StrAppend(&out, "</svg><p>", absl::StrJoin(legend, " &middot; "),
                  " &middot; top of the chart ", SecondsText(top_ms),
                  " &middot; ", history.size(), " points</p>");

  // The last checkpoints and drills.
  absl::StrAppend(
      &out,
      "<h2>Last checkpoint attempts</h2><table id=\"checkpoints\"><tr>"
      "<th>id</th><th>state</th><th>cut</th><th>why</th></tr>");
  // Every recorded attempt, aborted ones too (with why).
  if (auto list = store_->List(8, false); list.ok()) {
    for (const auto& c : *list) {
      absl::StrAppend(&out, "<tr><td>", c.id(), "</td><td>",
                      Html(StateName(c.state())), "</td><td>",
                      UnixMsText(c.cut_unix_ms()), "</td><td class=\"reason\">",
                      Html(c.reason()), "</td></tr>");
    }
  }
  absl::StrAppend(&out,
                  "</table><h2>Last drills</h2><table id=\"drills\"><tr>"
                  "<th>id</th><th>result</th><th>checkpoint</th><th>RTO</th>"
                  "<th>started</th></tr>");
  if (auto drills = ListDrills(5); drills.ok()) {
    for (const auto& d : drills->drills()) {
      absl::StrAppend(
          &out, "<tr><td>", d.id(), "</td><td>",
          d.ok() ? "passed" : absl::StrCat("FAILED: ", Html(d.error())),
          "</td><td>", d.checkpoint(), "</td><td>", SecondsText(d.rto_ms()),
          "</td><td>", UnixMsText(d.started_unix_ms()), "</td></tr>");
    }
  }
  absl::StrAppend(
      &out, "</table><p><small>", UnixMsText(absl::ToUnixMillis(now)),
      " &middot; refreshes every 5 s &middot; "
      "<a href=\"/metrics\">/metrics</a></small></p></body></html>\n");
  return out;
}

}  // namespace gwmirror
