#!/usr/bin/env bash
# CLI-level comparisons, run by `cargo xtask bench` after the criterion benches.
#
# On a guest of XSR_BENCH_MB MiB (default 1024) whose files sit in the page cache, compares in
# one run, best of XSR_BENCH_RUNS (default 3):
#   xsr save DIR      vs cp of the memory image       (target: within 1.3x)
#   xsr restore FILE  vs cp of the stream             (target: within 1.3x)
#   xsr verify FILE   vs cat FILE > /dev/null         (target: at least 20x faster)
#   xsr send --to | xsr receive over loopback TCP     vs xsr save --out - | xsr restore -
#   xsr send --via 'xsr receive --from -'             vs the same pipeline
#                                                     (the handshake's cost; target: within 1.05x)
#   xsr send --to over TLS 1.3 (mutual certificates)  vs the same over plaintext TCP, runs
#                                                     interleaved, min/median/max of each
#                                                     (target: TLS throughput >= 0.7x plaintext)
#   xsr extract --format raw|elf|lime FILE vs cp of the stream (target: within 1.1x)
#   peak RSS of xsr save, xsr restore and xsr extract (target: under 64 MiB)
set -euo pipefail
cd "$(dirname "$0")/.."

MB=${XSR_BENCH_MB:-1024}
RUNS=${XSR_BENCH_RUNS:-5}
cargo build --release --quiet --bin xsr
XSR=$PWD/target/release/xsr
WORK=$PWD/target/cli-bench
rm -rf "$WORK"
mkdir -p "$WORK/guest"
trap 'rm -rf "$WORK"' EXIT

# A dense HVM guest: random memory, a minimal HVM context (HEADER + END entries).
head -c "$((MB << 20))" /dev/urandom > "$WORK/guest/memory.img"
Z8='\x00\x00\x00\x00\x00\x00\x00\x00'
printf "\x01\x00\x00\x00\x18\x00\x00\x00\x86\x12\x38\x54\x01\x00\x00\x00$Z8$Z8$Z8" > "$WORK/guest/hvm_context.bin"
PAGES=$((MB << 8))
cat > "$WORK/guest/domain.json" <<JSON
{ "format": "xsr-domain-image/1", "domain_type": 2, "page_shift": 12, "xen_version": [4, 17],
  "memory": { "file": "memory.img", "pages": $PAGES, "populated": [[0, $PAGES]] },
  "hvm_context": "hvm_context.bin", "container": { "layer": "libxc" } }
JSON

# Bash's clock, so no process is started inside the timed region.
now() { local t=${EPOCHREALTIME/./}; echo "${t}000"; }
# Prints the best wall time in seconds over $RUNS runs (each run after a sync,
# so writeback of the previous run's output does not land in the next one's time).
# best_of PREP CMD: PREP (untimed) removes the previous output, CMD is timed.
best_of() {
    local best=""
    for _ in $(seq "$RUNS"); do
        local t0 t1
        "$1"
        sync
        t0=$(now); "$2"; t1=$(now)
        local d=$(( t1 - t0 ))
        if [ -z "$best" ] || [ "$d" -lt "$best" ]; then best=$d; fi
    done
    awk -v ns="$best" 'BEGIN { printf "%.4f", ns / 1e9 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
rss_mib() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n 1 | awk '{ printf "%.1f", $1 / 1024 }'; }

# Let the writeback of the image just written finish first: it would land in the first timings.
sync
cat "$WORK/guest/memory.img" > /dev/null

none() { :; }
rm_stream() { rm -f "$WORK/stream"; }
rm_image_copy() { rm -f "$WORK/image.copy"; }
rm_restored() { rm -rf "$WORK/restored"; }
rm_stream_copy() { rm -f "$WORK/stream.copy"; }
save_once() { "$XSR" save "$WORK/guest" --out "$WORK/stream" 2> /dev/null; }
cp_image() { cp "$WORK/guest/memory.img" "$WORK/image.copy"; }
t_save=$(best_of rm_stream save_once)
t_cp_image=$(best_of rm_image_copy cp_image)
rm -f "$WORK/image.copy"
cat "$WORK/stream" > /dev/null

restore_once() { "$XSR" restore "$WORK/stream" --out "$WORK/restored" > /dev/null; }
cp_stream() { cp "$WORK/stream" "$WORK/stream.copy"; }
t_restore=$(best_of rm_restored restore_once)
t_cp_stream=$(best_of rm_stream_copy cp_stream)
rm -f "$WORK/stream.copy"
cmp -s "$WORK/guest/memory.img" "$WORK/restored/memory.img" || { echo "restored image differs" >&2; exit 1; }

# extract: one pass from the stream's page bodies to each page's final offset.
rm_extracted() { rm -f "$WORK/extracted"; }
extract_raw() { "$XSR" extract "$WORK/stream" --format raw --out "$WORK/extracted" > /dev/null; }
extract_elf() { "$XSR" extract "$WORK/stream" --format elf --out "$WORK/extracted" > /dev/null; }
extract_lime() { "$XSR" extract "$WORK/stream" --format lime --out "$WORK/extracted" > /dev/null; }
t_extract_raw=$(best_of rm_extracted extract_raw)
cmp -s "$WORK/guest/memory.img" "$WORK/extracted" || { echo "extracted raw image differs" >&2; exit 1; }
t_extract_elf=$(best_of rm_extracted extract_elf)
tail -c "$((MB << 20))" "$WORK/extracted" | cmp -s "$WORK/guest/memory.img" - || { echo "ELF core's memory differs" >&2; exit 1; }
t_extract_lime=$(best_of rm_extracted extract_lime)
tail -c "$((MB << 20))" "$WORK/extracted" | cmp -s "$WORK/guest/memory.img" - || { echo "LiME memory differs" >&2; exit 1; }
rm -f "$WORK/extracted"
rss_extract=$(rss_mib "$XSR" extract "$WORK/stream" --format elf --out "$WORK/extracted")
rm -f "$WORK/extracted"

verify_once() { "$XSR" verify "$WORK/stream" > /dev/null; }
cat_stream() { cat "$WORK/stream" > /dev/null; }
t_verify=$(best_of none verify_once)
t_cat=$(best_of none cat_stream)

rm -rf "$WORK/restored"
rss_restore=$(rss_mib "$XSR" restore "$WORK/stream" --out "$WORK/restored")
rm -f "$WORK/stream2"
rss_save=$(rss_mib "$XSR" save "$WORK/guest" --out "$WORK/stream2")

# The transfer handshake against a plain pipeline of the same image.
rm_piped() { rm -rf "$WORK/piped"; }
pipeline() { "$XSR" save "$WORK/guest" --out - 2> /dev/null | "$XSR" restore - --out "$WORK/piped" > /dev/null; }
t_pipeline=$(best_of rm_piped pipeline)
cmp -s "$WORK/guest/memory.img" "$WORK/piped/memory.img" || { echo "piped image differs" >&2; exit 1; }
rm -rf "$WORK/piped"

# The receiver is started (and listening) before the clock starts, as the pipeline's
# processes are started inside it: both timings include the sender's and receiver's work.
start_receiver() {
    rm -rf "$WORK/received"
    : > "$WORK/receiver.err"
    "$XSR" receive --listen 127.0.0.1:0 --out "$WORK/received" > /dev/null 2> "$WORK/receiver.err" &
    RECEIVER=$!
    until grep -q '^listening on ' "$WORK/receiver.err"; do sleep 0.01; done
    ADDR=$(sed -n 's/^listening on //p' "$WORK/receiver.err")
}
send_tcp() { "$XSR" send "$WORK/guest" --to "$ADDR" 2> /dev/null; wait "$RECEIVER"; }
t_send_tcp=$(best_of start_receiver send_tcp)
cmp -s "$WORK/guest/memory.img" "$WORK/received/memory.img" || { echo "received image differs" >&2; exit 1; }
rm_received() { rm -rf "$WORK/received"; }
send_via() { "$XSR" send "$WORK/guest" --via "'$XSR' receive --from - --out '$WORK/received' 2> /dev/null" 2> /dev/null; }
t_send_via=$(best_of rm_received send_via)
cmp -s "$WORK/guest/memory.img" "$WORK/received/memory.img" || { echo "received image differs" >&2; exit 1; }
rm -rf "$WORK/received"

# TLS against plaintext over loopback, interleaved so that both see the same machine. The
# certificates are made with openssl as docs/migrating.md shows.
TLS=$WORK/tls
mkdir -p "$TLS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=xsr bench CA" \
    -keyout "$TLS/ca.key" -out "$TLS/ca.crt" 2> /dev/null
for side in src dst; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$side.example" \
        -keyout "$TLS/$side.key" -out "$TLS/$side.csr" 2> /dev/null
    printf 'subjectAltName=DNS:%s.example,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' "$side" > "$TLS/$side.ext"
    openssl x509 -req -in "$TLS/$side.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" -CAcreateserial -days 2 \
        -extfile "$TLS/$side.ext" -out "$TLS/$side.crt" 2> /dev/null
done
RECV_TLS=(--tls-cert "$TLS/dst.crt" --tls-key "$TLS/dst.key" --tls-ca "$TLS/ca.crt" --tls-allow src.example)
SEND_TLS=(--tls-cert "$TLS/src.crt" --tls-key "$TLS/src.key" --tls-ca "$TLS/ca.crt")
# transfer_once MODE: one timed transfer (receiver started and listening before the clock);
# prints nanoseconds.
transfer_once() {
    local recv_args=() send_args=()
    if [ "$1" = tls ]; then recv_args=("${RECV_TLS[@]}"); send_args=("${SEND_TLS[@]}"); fi
    rm -rf "$WORK/received"
    : > "$WORK/receiver.err"
    /usr/bin/time -f '%U %S' -o "$WORK/receiver.cpu" \
        "$XSR" receive --listen 127.0.0.1:0 --out "$WORK/received" "${recv_args[@]}" > /dev/null 2> "$WORK/receiver.err" &
    local receiver=$!
    until grep -q '^listening on ' "$WORK/receiver.err"; do sleep 0.01; done
    local port
    port=$(sed -n 's/^listening on .*://p' "$WORK/receiver.err")
    sync
    local t0 t1
    t0=$(now)
    /usr/bin/time -f '%U %S' -o "$WORK/sender.cpu" "$XSR" send "$WORK/guest" --to "localhost:$port" "${send_args[@]}" 2> /dev/null
    wait "$receiver"
    t1=$(now)
    cmp -s "$WORK/guest/memory.img" "$WORK/received/memory.img" || { echo "$1: received image differs" >&2; exit 1; }
    # CPU seconds (user + system) of each side: what the machine's load does not change.
    awk '{ print $1 + $2 }' "$WORK/sender.cpu" >> "$WORK/$1.sender.cpu"
    awk '{ print $1 + $2 }' "$WORK/receiver.cpu" >> "$WORK/$1.receiver.cpu"
    echo $(( t1 - t0 ))
}
plain_ns=()
tls_ns=()
rm -f "$WORK"/*.sender.cpu "$WORK"/*.receiver.cpu
for _ in $(seq "$RUNS"); do
    plain_ns+=("$(transfer_once plain)")
    tls_ns+=("$(transfer_once tls)")
done
grep -q 'TLS 1.3 TLS13_AES_128_GCM_SHA256 X25519MLKEM768, the sender certificate src.example' "$WORK/receiver.err" \
    || { echo "the TLS receiver did not report its session" >&2; cat "$WORK/receiver.err" >&2; exit 1; }
rm -rf "$WORK/received"
# spread NS...: "min median max" in seconds.
spread() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 / 1e9 } END { printf "%.3f %.3f %.3f", v[1], v[int((NR + 1) / 2)], v[NR] }'; }
read -r plain_min plain_med plain_max <<< "$(spread "${plain_ns[@]}")"
read -r tls_min tls_med tls_max <<< "$(spread "${tls_ns[@]}")"
median_of() { sort -n "$1" | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }'; }

echo
echo "cli-bench: ${MB} MiB guest, best of $RUNS, files in the page cache"
printf '  %-34s %8ss   cp of the image  %8ss   ratio %sx (target <= 1.3)\n' "xsr save" "$t_save" "$t_cp_image" "$(ratio "$t_save" "$t_cp_image")"
printf '  %-34s %8ss   cp of the stream %8ss   ratio %sx (target <= 1.3)\n' "xsr restore" "$t_restore" "$t_cp_stream" "$(ratio "$t_restore" "$t_cp_stream")"
printf '  %-34s %8ss   cp of the stream %8ss   ratio %sx (target <= 1.1)\n' "xsr extract --format raw" "$t_extract_raw" "$t_cp_stream" "$(ratio "$t_extract_raw" "$t_cp_stream")"
printf '  %-34s %8ss   cp of the stream %8ss   ratio %sx (target <= 1.1)\n' "xsr extract --format elf" "$t_extract_elf" "$t_cp_stream" "$(ratio "$t_extract_elf" "$t_cp_stream")"
printf '  %-34s %8ss   cp of the stream %8ss   ratio %sx (target <= 1.1)\n' "xsr extract --format lime" "$t_extract_lime" "$t_cp_stream" "$(ratio "$t_extract_lime" "$t_cp_stream")"
printf '  %-34s %8ss   cat > /dev/null  %8ss   %sx faster (target >= 20)\n' "xsr verify" "$t_verify" "$t_cat" "$(ratio "$t_cat" "$t_verify")"
printf '  %-34s %8s MiB (target < 64)\n' "peak RSS xsr restore" "$rss_restore"
printf '  %-34s %8s MiB (target < 64)\n' "peak RSS xsr save" "$rss_save"
printf '  %-34s %8ss   save | restore - %8ss   ratio %sx (target <= 1.05)\n' "xsr send --to (loopback TCP)" "$t_send_tcp" "$t_pipeline" "$(ratio "$t_send_tcp" "$t_pipeline")"
printf '  %-34s %8ss   save | restore - %8ss   ratio %sx (target <= 1.05)\n' "xsr send --via 'receive --from -'" "$t_send_via" "$t_pipeline" "$(ratio "$t_send_via" "$t_pipeline")"
printf '  %-34s %8s MiB (target < 64)\n' "peak RSS xsr extract --format elf" "$rss_extract"
mibps() { awk -v mb="$MB" -v s="$1" 'BEGIN { printf "%.0f", mb / s }'; }
printf '  %-34s min/median/max %s/%s/%s s (%s/%s/%s MiB/s)\n' "xsr send --to, plaintext TCP" \
    "$plain_min" "$plain_med" "$plain_max" "$(mibps "$plain_max")" "$(mibps "$plain_med")" "$(mibps "$plain_min")"
printf '  %-34s min/median/max %s/%s/%s s (%s/%s/%s MiB/s)\n' "xsr send --to, TLS 1.3" \
    "$tls_min" "$tls_med" "$tls_max" "$(mibps "$tls_max")" "$(mibps "$tls_med")" "$(mibps "$tls_min")"
printf '  %-34s %sx at the median, %sx best against best (target >= 0.7)\n' "TLS throughput / plaintext" \
    "$(ratio "$plain_med" "$tls_med")" "$(ratio "$plain_min" "$tls_min")"
printf '  %-34s sender %s s, receiver %s s (plaintext: %s s, %s s)\n' "median CPU (user+sys), TLS" \
    "$(median_of "$WORK/tls.sender.cpu")" "$(median_of "$WORK/tls.receiver.cpu")" \
    "$(median_of "$WORK/plain.sender.cpu")" "$(median_of "$WORK/plain.receiver.cpu")"
