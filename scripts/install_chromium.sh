#!/usr/bin/env bash
# Install Chromium for the browser test (tests/test_browser.py) when none is found.
#
# Playwright's own browser download needs the internet; CI reaches only package
# registries, so this uses the distribution's package: Debian's `chromium`, through
# apt-get, as root or with passwordless sudo. Exits 0 when Chromium is there or was
# installed, 1 when it could not be installed (and says why). .ci/run goes on either
# way: with COURSE_REQUIRE_BROWSER=1 the browser test then fails and names the problem.
set -uo pipefail

find_chromium() {
    local candidate
    for candidate in "${COURSE_CHROMIUM:-}" /usr/lib/chromium/chromium \
                     /usr/lib/chromium-browser/chromium-browser; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    for candidate in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$candidate" >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if found=$(find_chromium); then
    echo "install_chromium: found $found"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: no Chromium and no apt-get; install Chromium and set" \
         "COURSE_CHROMIUM to its binary" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "install_chromium: no Chromium; apt-get needs root or passwordless sudo" >&2
    exit 1
fi

apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive
     apt-get -o DPkg::Lock::Timeout=300)
start=$(date +%s)
for attempt in 1 2 3; do
    if "${apt[@]}" update -qq \
        && "${apt[@]}" install -y -qq --no-install-recommends chromium; then
        break
    fi
    echo "install_chromium: apt-get failed (attempt $attempt of 3)" >&2
    sleep $((attempt * 10))
done
if found=$(find_chromium); then
    echo "install_chromium: installed $found in $(( $(date +%s) - start )) s"
    exit 0
fi
echo "install_chromium: apt-get could not install the chromium package" >&2
exit 1
