#!/usr/bin/env bash
# Make sure the programs the test suite runs are installed:
#   - a JDK 17 or newer, `java` and `javac` on PATH (Spark and Flink jobs, the Hive Metastore the federation
#     tests compile and start): Debian's openjdk-17-jdk-headless;
#   - Chromium (the browser test of /graphql and /docs): Debian's chromium;
#   - curl (the README's examples, which a test runs): Debian's curl.
# Missing ones are installed with apt-get when this runs as root on a machine that has it; otherwise it stops
# with exit status 1, naming the package to install. Exit status 0 only when everything is there.
set -u

MIN_JAVA=17
JDK_PACKAGE=openjdk-17-jdk-headless

say() { echo "ensure-test-tools: $*"; }

# The major version in `java -version` or `javac -version` output: 'openjdk version "17.0.15"', 'java version
# "1.8.0_292"', 'javac 21.0.2'.
java_major() {
  local version
  version=$(printf '%s\n' "$1" | sed -n -e 's/.* version "\([^"]*\)".*/\1/p' -e 's/^javac \([0-9][^ ]*\).*/\1/p' | head -n 1)
  case "$version" in 1.*) version=${version#1.} ;; esac
  printf '%s\n' "${version%%[!0-9]*}"
}

# Why the JDK is not usable, or nothing when it is.
jdk_problem() {
  local tool output major
  for tool in java javac; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "$tool is not on PATH"
      return
    fi
    output=$("$tool" -version 2>&1)
    major=$(java_major "$output")
    if [ -z "$major" ]; then
      echo "cannot read the version of $(command -v "$tool") from: $(printf '%s' "$output" | head -n 1)"
      return
    fi
    if [ "$major" -lt "$MIN_JAVA" ]; then
      echo "$(command -v "$tool") is version $major, older than $MIN_JAVA"
      return
    fi
  done
}

# Fill `missing` (Debian packages) and `problems` (one line each) from what is not usable.
check() {
  missing=()
  problems=()
  local jdk
  jdk=$(jdk_problem)
  if [ -n "$jdk" ]; then
    missing+=("$JDK_PACKAGE")
    problems+=("a JDK $MIN_JAVA or newer (java and javac): $jdk")
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    missing+=(chromium)
    problems+=("Chromium: chromium is not on PATH")
  fi
  if ! command -v curl >/dev/null 2>&1; then
    missing+=(curl)
    problems+=("curl: curl is not on PATH")
  fi
}

check
if [ ${#missing[@]} -eq 0 ]; then
  say "JDK $(java_major "$(java -version 2>&1)") ($(command -v javac)), Chromium and curl are installed"
  exit 0
fi
for problem in "${problems[@]}"; do say "missing $problem"; done

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing ${missing[*]} with apt-get"
  if DEBIAN_FRONTEND=noninteractive apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; then
    hash -r
    check
    if [ ${#missing[@]} -eq 0 ]; then
      say "installed; JDK $(java_major "$(java -version 2>&1)"), Chromium and curl are ready"
      exit 0
    fi
    for problem in "${problems[@]}"; do say "still missing after apt-get: $problem"; done
  fi
fi
say "the tests cannot run without these; install them (as root): apt-get install ${missing[*]}" >&2
exit 1
