#!/usr/bin/env bash
# The README's test command: installs what is missing, configures and builds
# in build/, runs every test with ctest, then builds the unit tests with
# AddressSanitizer + UndefinedBehaviorSanitizer in build/asan and runs them,
# then the unit test binaries with ThreadSanitizer in build/tsan
# (tests/tsan/: Abseil's locks made visible to TSan, and what it cannot see
# inside Debian's gRPC libraries suppressed, each line with its reason).
set -euo pipefail
cd "$(dirname "$0")/.."
# chromium: the status page is tested in a real headless browser.
bash scripts/setup.sh chromium
# Cache hits across clones (CI builds a fresh clone in another folder).
export CCACHE_BASEDIR="$PWD"
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGWMIRROR_TESTS=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 900)
if [ "${GWMIRROR_SKIP_ASAN:-0}" != 1 ]; then
  cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DGWMIRROR_ASAN=ON -DGWMIRROR_TESTS=ON >/dev/null
  cmake --build build/asan -j"$jobs"
  (cd build/asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs" -L unit --timeout 900)
fi
if [ "${GWMIRROR_SKIP_TSAN:-0}" != 1 ]; then
  supp="$PWD/tests/tsan/suppressions.txt"
  cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGWMIRROR_TSAN=ON -DGWMIRROR_TESTS=ON >/dev/null
  cmake --build build/tsan -j"$jobs" --target common_test node_test coordinator_test cli_test
  (cd build/tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$supp" \
    ctest --output-on-failure -j"$jobs" -R '^(common|node|coordinator|cli)_test$' --timeout 900)
fi
