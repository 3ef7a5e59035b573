#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECS seconds (default 600), two at a time, then minimises
# each corpus and packs it into fuzz/corpus/<target>.tar.gz, which is what the repository
# keeps (one small file per target; the unpacked directories are ignored). A crash stops the
# run with the reproducer in fuzz/artifacts/<target>/.
#   fuzz/run.sh                 # all targets
#   FUZZ_SECS=60 fuzz/run.sh token_form gateway_path
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1 # the stable toolchain, with the sanitizer flags cargo-fuzz passes
secs="${FUZZ_SECS:-600}"
targets=("$@")
((${#targets[@]})) || targets=(token_verifier token_form consent_request kyc_request gateway_path)
cargo fuzz build -O
run() {
  local t=$1
  mkdir -p "fuzz/corpus/$t"
  [[ -f "fuzz/corpus/$t.tar.gz" ]] && tar -xzf "fuzz/corpus/$t.tar.gz" -C "fuzz/corpus/$t"
  cargo fuzz run -O "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -max_len=4096 \
    >"fuzz/$t.log" 2>&1 || { tail -30 "fuzz/$t.log"; echo "fuzz: $t FAILED" >&2; return 1; }
  grep -E "^Done [0-9]+ runs" "fuzz/$t.log" | sed "s/^/$t: /"
}
status=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  pids=()
  for t in "${targets[@]:i:2}"; do run "$t" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
done
for t in "${targets[@]}"; do
  cargo fuzz cmin -O "$t" "fuzz/corpus/$t" >/dev/null 2>&1 || true
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "fuzz/corpus/$t" -cf - . \
    | gzip -n9 >"fuzz/corpus/$t.tar.gz"
  echo "$t: corpus $(ls "fuzz/corpus/$t" | wc -l) inputs, $(stat -c %s "fuzz/corpus/$t.tar.gz") bytes packed"
done
exit $status
