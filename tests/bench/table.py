"""Prints the benchmark table: one row per scenario and tool from a TSV of
runs (scenario, tool, wall s, wire bytes, source CPU s, source peak RSS KiB,
replica CPU s, replica peak RSS KiB or "-"), min and median wall, medians of
the rest, ratios to rsync's medians in the same run; then, when a second TSV
(scenario, entries, index hits, bytes hashed) is given, the index's work.

  python3 tests/bench/table.py RESULTS [SCANS [LIMITS]]

With LIMITS (tests/bench/limits.py's TSV), the physical limits measured in
the same run, and the dump scenarios' gwmirror wall beside them.
"""
import collections
import statistics
import sys

rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    scen, tool, wall, wire, cpu, rss, rcpu, rrss = line.rstrip("\n").split("\t")
    rows.setdefault(scen, {}).setdefault(tool, []).append(
        (float(wall), int(wire), float(cpu), int(rss), float(rcpu),
         None if rrss == "-" else int(rrss)))
print("| scenario | tool | wall min s | wall median s | bytes on wire | source CPU s | replica CPU s | source peak RSS MiB | replica peak RSS MiB | wall ratio to rsync (median) | bytes ratio to rsync |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for scen, tools in rows.items():
    ref = tools.get("rsync")
    refw = statistics.median(r[0] for r in ref) if ref else None
    refb = statistics.median(r[1] for r in ref) if ref else None
    for tool in ("gwmirror", "rsync", "rsync --copy-dest"):
        rs = tools.get(tool, [])
        if not rs:
            continue
        w = [r[0] for r in rs]
        b = statistics.median(r[1] for r in rs)
        c = statistics.median(r[2] for r in rs)
        m = max(r[3] for r in rs) / 1024
        rc = statistics.median(r[4] for r in rs)
        rm = "-" if rs[0][5] is None else f"{max(r[5] for r in rs) / 1024:.0f}"
        med = statistics.median(w)
        ratio = f"{med / refw:.2f}" if refw else "-"
        bratio = f"{b / refb:.3f}" if refb and refb > 0 else "-"
        print(f"| {scen} | {tool} | {min(w):.3f} | {med:.3f} | {int(b)} | {c:.2f} | {rc:.2f} | {m:.0f} | {rm} | {ratio} | {bratio} |")
if len(sys.argv) > 2:
    print()
    print("| scenario (gwmirror, last run) | entries | files found unchanged by the index | bytes hashed | signatures fetched (round trips) |")
    print("|---|---|---|---|---|")
    last = collections.OrderedDict()
    for line in open(sys.argv[2]):
        scen, *counts = line.rstrip("\n").split("\t")
        last[scen] = counts
    for scen, counts in last.items():
        print(f"| {scen} | " + " | ".join(counts) + " |")
if len(sys.argv) > 3:
    limits = collections.OrderedDict()
    for line in open(sys.argv[3]):
        name, secs, mbps = line.rstrip("\n").split("\t")
        limits[name] = (float(secs), mbps)
    print()
    print("| physical limit on this machine, same run, the dump file | s | MB/s |")
    print("|---|---|---|")
    for name, (secs, mbps) in limits.items():
        print(f"| {name} | {secs:.3f} | {mbps} |")
    print()
    print("| scenario | gwmirror wall median s | limit of its work s | gwmirror / limit |")
    print("|---|---|---|---|")
    for scen, tools in rows.items():
        key = ("limit: initial" if scen.startswith("initial:") and "dump" in scen
               else "limit: 1% change" if scen.startswith("dump:") else None)
        if key is None or key not in limits or "gwmirror" not in tools:
            continue
        med = statistics.median(r[0] for r in tools["gwmirror"])
        print(f"| {scen} | {med:.3f} | {limits[key][0]:.3f} | {med / limits[key][0]:.2f} |")
