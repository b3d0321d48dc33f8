#!/usr/bin/env bash
# The coordinator's status page in a real headless browser (Debian's
# chromium): a two-slot sandbox with one slot held (a mass deletion on its
# production host) serves / on its metrics listener; the page the browser
# renders shows both sites with their hosts, groups and instances, slot gw1
# HELD and gw2 OK, the chart and the last checkpoints; a screenshot is kept
# as a test artifact (BUILD_DIR/Testing/status-page.png).
#
#   tests/deploy/status_page_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
command -v chromium >/dev/null || {
  echo "status_page_test: chromium missing (scripts/test.sh installs it)" >&2; exit 1; }
W=$(mktemp -d /tmp/gwmirror-page.XXXXXX)
G="$build/gwmirror"
cleanup() { "$G" sandbox down --dir "$W/sb" >/dev/null 2>&1 || true; rm -rf "$W"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
fail() { echo "status_page_test: $*" >&2; exit 1; }

timeout 300 "$G" sandbox up --dir "$W/sb" --slots 2 --manual >"$W/up.log" 2>&1 || {
  cat "$W/up.log" >&2; exit 1; }
read -r url gw1 < <(python3 -c '
import json, sys
sb = json.load(open(sys.argv[1]))
print(sb["metrics_url"][:-len("/metrics")] + "/", sb["slots"][0]["production"]["root"])' "$W/sb/sandbox.json")
export GWMIRROR_CONFIG="$W/sb/cli.json"
# gw1's production loses its whole conf folder: the cut is held.
rm -rf "$gw1/opt/Axway-7.7/apigateway/conf"
if "$G" checkpoint create --wait >"$W/cut.log" 2>&1; then
  fail "the mass deletion was not held: $(cat "$W/cut.log")"
fi
"$G" status >"$W/status.txt"

browse() {  # browse ARGS...: chromium headless, bounded in time
  timeout 60 chromium --headless=new --no-sandbox --disable-gpu \
    --disable-dev-shm-usage --no-first-run --user-data-dir="$W/profile" \
    --window-size=1280,1100 "$@" 2>>"$W/chromium.log"
}
browse --dump-dom "$url" >"$W/dom.html" || fail "chromium could not load $url: $(tail -5 "$W/chromium.log")"
python3 - "$W/dom.html" <<'PY' || exit 1
import re, sys
dom = open(sys.argv[1]).read()
def row(id):
    m = re.search(r'<tr id="%s">(.*?)</tr>' % re.escape(id), dom, re.S)
    assert m, f"no row {id} in the page"
    return m.group(1)
def need(what, text):
    assert what in text, f"the page lacks {what!r}"
need('id="site-production"', dom)
need('id="site-standby"', dom)
need("QuickStart Group: ", dom)              # groups and their instances
need("gw1-production", dom); need("gw1-standby", dom)
need("gw2-production", dom); need("gw2-standby", dom)
need('class="state HELD">HELD', row("slot-gw1"))
need("mass deletion held", row("slot-gw1"))
need('class="state OK">OK', row("slot-gw2"))
need("<title>gwmirror: HELD</title>", dom)
need('<svg id="chart"', dom)
need('<circle', dom)                        # at least one point of RPO and lag
need('id="checkpoints"', dom)
need("aborted", dom.lower())
print("status page: both sites, gw1 HELD, gw2 OK, chart and checkpoints")
PY
mkdir -p "$build/Testing"
shot="$build/Testing/status-page.png"
rm -f "$shot"
browse --screenshot="$shot" "$url" >/dev/null || fail "no screenshot: $(tail -5 "$W/chromium.log")"
size=$(stat -c %s "$shot" 2>/dev/null || echo 0)
[ "$size" -gt 10000 ] || fail "the screenshot is $size bytes"
echo "status_page_test: screenshot $shot ($size bytes)"
