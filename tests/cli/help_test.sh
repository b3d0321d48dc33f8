#!/usr/bin/env bash
# Every command of the three binaries answers --help (exit 0) listing each
# of its flags; the generated man pages render with man -l without a
# warning; the generated bash completion completes commands and flags; a
# usage error exits 2 with a suggestion and the usage line; global flags
# are taken before or after the command.
#
#   tests/cli/help_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
W=$(mktemp -d /tmp/gwmirror-help.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail() { echo "help_test: $*" >&2; exit 1; }

checked=0
flags=0
for pair in gwmirror:1 gwmirror-node:8 gwmirror-coordinator:8; do
  bin=${pair%%:*}; section=${pair##*:}
  man="$build/man/$bin.$section"
  [ -s "$man" ] || fail "$man was not generated"
  MANWIDTH=80 man --warnings -l "$man" >"$W/man.txt" 2>"$W/man.err" || fail "man -l $man failed"
  [ ! -s "$W/man.err" ] || fail "man -l $man warns: $(cat "$W/man.err")"
  grep -q "^COMMANDS" "$W/man.txt" || fail "$man has no COMMANDS section"
  "$build/$bin" --help >"$W/top.txt" || fail "$bin --help exited $?"
  grep -q "Usage: $bin" "$W/top.txt" || fail "$bin --help has no usage"
  # Each command of the man page: its --help exits 0 and lists its flags.
  awk '/^\.SS /{sub(/^\.SS "/,""); sub(/"$/,""); gsub(/\\-/,"-"); cmd=$0; next}
       /^\.SH /{cmd=""}
       /^\.B \\-/ && cmd!="" {f=$2; gsub(/\\/,"",f); sub(/,$/,"",f);
                                 for(i=2;i<=NF;i++) if ($i ~ /^\\-\\-/) {f=$i; gsub(/\\/,"",f)}
                                 print cmd "\t" f}
 ' "$man" >"$W/flags.tsv"
  grep -o '^\.SS "[^"]*"' "$man" | sed 's/^\.SS "//; s/"$//; s/\\-/-/g' >"$W/cmds.txt"
  while read -r cmd; do
    # shellcheck disable=SC2086
    "$build/$bin" $cmd --help >"$W/help.txt" 2>&1 || fail "$bin $cmd --help exited $?"
    grep -q "Usage: $bin $cmd" "$W/help.txt" || fail "$bin $cmd --help: $(head -3 "$W/help.txt")"
    while IFS=$'\t' read -r c flag; do
      [ "$c" = "$cmd" ] || continue
      grep -q -- "$flag" "$W/help.txt" || fail "$bin $cmd --help does not list $flag"
      flags=$((flags + 1))
    done <"$W/flags.tsv"
    checked=$((checked + 1))
  done <"$W/cmds.txt"
done
[ "$checked" -ge 30 ] && [ "$flags" -ge 60 ] ||
  fail "only $checked commands and $flags flags found in the man pages"

# help COMMAND is COMMAND --help.
"$build/gwmirror" help export | grep -q -- "--slot" || fail "gwmirror help export lacks --slot"

# Usage errors: exit 2, a suggestion, the usage line.
set +e
"$build/gwmirror" status --jsn 2>"$W/err"; rc=$?
set -e
[ "$rc" = 2 ] || fail "an unknown flag exited $rc"
grep -q "did you mean --json" "$W/err" || fail "no suggestion: $(cat "$W/err")"
grep -q "usage: gwmirror status" "$W/err" || fail "no usage line: $(cat "$W/err")"
set +e
"$build/gwmirror" chekpoints 2>"$W/err"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q 'did you mean "checkpoints"' "$W/err" || fail "unknown command: rc=$rc $(cat "$W/err")"

# Global flags before and after the command: both read the named config.
echo '{"coordinatr": "x"}' >"$W/bad.json"
for args in "--config $W/bad.json status" "status --config $W/bad.json" "status --config=$W/bad.json"; do
  set +e
  # shellcheck disable=SC2086
  "$build/gwmirror" $args 2>"$W/err"; rc=$?
  set -e
  grep -q "bad.json" "$W/err" || fail "gwmirror $args did not read the config: $(cat "$W/err")"
done

# Bash completion completes commands, subcommands and flags.
complete_words() {  # BIN WORD...: the completions of the last word
  local bin=$1; shift
  bash -c 'source "$1"; shift; bin=$1; shift
           COMP_WORDS=("$bin" "$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
           fn=_${bin//-/_}; $fn; printf "%s\n" "${COMPREPLY[@]}"' \
    _ "$build/completion/$bin" "$bin" "$@"
}
complete_words gwmirror sta | grep -qx status || fail "completion of 'sta'"
complete_words gwmirror certs i | sort | tr '\n' ' ' | grep -q "init issue" || fail "completion of 'certs i'"
complete_words gwmirror export --s | grep -qx -- --slot || fail "completion of 'export --s'"
complete_words gwmirror --config x.json promote --d | grep -qx -- --dry-run || fail "completion after a global flag"
complete_words gwmirror-node pu | grep -qx push || fail "gwmirror-node completion"
echo "help_test: $checked commands answer --help with their $flags flags; man pages render; completion works"
