# realxen-guest: 32:1:100
# realxen-tls
# diagnostic: which transports carry a domain send intact
. ./common.sh
ip link set lo up
disable_xen_helper
TLS_DST="--tls-cert dst.example.crt --tls-key dst.example.key --tls-ca ca.crt --tls-allow src.example"
TLS_SRC="--tls-name dst.example --tls-cert src.example.crt --tls-key src.example.key --tls-ca ca.crt"
try() { # LABEL PORT RECVARGS -- SENDARGS
    _l=$1; _p=$2; shift 2
    _r=""; while [ "$1" != "--" ]; do _r="$_r $1"; shift; done; shift
    ./xsr receive --listen 127.0.0.1:$_p $_r > "$OUT/$_l-recv.txt" 2>&1 &
    _rp=$!; listening $_p
    ./xsr send --domain "$GUEST" --to 127.0.0.1:$_p --keep-running "$@" > "$OUT/$_l-send.txt" 2>&1; _rc=$?
    wait_for $_rp 60; _rrc=$?
    log "DIAG $_l: send $_rc receive $_rrc: $(tr '\n' ' ' < "$OUT/$_l-send.txt" | cut -c1-300) | $(tr '\n' ' ' < "$OUT/$_l-recv.txt" | cut -c1-300)"
    [ -f "$OUT/$_l.save" ] && { ./xsr verify "$OUT/$_l.save" > "$OUT/$_l-verify.txt" 2>&1; log "DIAG $_l verify: $? $(tail -n 2 "$OUT/$_l-verify.txt" | tr '\n' ' ')"; rm -f "$OUT/$_l.save"; }
}
try tls-file-live 7971 --out-file "$OUT/tls-file-live.save" $TLS_DST -- --live $TLS_SRC
try tls-file-nonlive 7972 --out-file "$OUT/tls-file-nonlive.save" $TLS_DST -- $TLS_SRC
try plain-file-live 7973 --out-file "$OUT/plain-file-live.save" -- --live
./xsr send --domain "$GUEST" --keep-running --live --via "./xsr receive --from - --out-file $OUT/via-live.save" > "$OUT/via-send.txt" 2>&1
log "DIAG via-file-live: send $?: $(tr '\n' ' ' < "$OUT/via-send.txt" | cut -c1-400)"
./xsr verify "$OUT/via-live.save" > "$OUT/via-verify.txt" 2>&1; log "DIAG via verify: $? $(tail -n 2 "$OUT/via-verify.txt" | tr '\n' ' ')"; rm -f "$OUT/via-live.save"
# The same with aws-lc's AES-NI/PCLMUL/AVX2/AVX-512/VAES code paths and glibc's AVX2/AVX-512
# string functions off (dom0 runs under QEMU TCG with -cpu max)
export OPENSSL_ia32cap="~0x200000200000000:~0x60000010020"
export GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX2,-ERMS,-FSRM
try tls-file-live-nosimd 7974 --out-file "$OUT/tls-file-live-nosimd.save" $TLS_DST -- --live $TLS_SRC
./xsr receive --domain --listen 127.0.0.1:7975 $TLS_DST > "$OUT/tdn-recv.txt" 2>&1 &
rp=$!; listening 7975
./xsr send --domain "$GUEST" --to 127.0.0.1:7975 --live $TLS_SRC > "$OUT/tdn-send.txt" 2>&1; rc=$?
wait_for $rp 60; rrc=$?
log "DIAG tls-domain-live-nosimd: send $rc receive $rrc: $(tr '\n' ' ' < "$OUT/tdn-send.txt" | cut -c1-300) | $(tr '\n' ' ' < "$OUT/tdn-recv.txt" | cut -c1-400)"
./xsr send --domain "$GUEST" --keep-running --live --via "./xsr receive --from - --out-file $OUT/via-nosimd.save" > "$OUT/via2-send.txt" 2>&1
log "DIAG via-file-live-nosimd: send $?: $(tr '\n' ' ' < "$OUT/via2-send.txt" | cut -c1-400)"
./xsr verify "$OUT/via-nosimd.save" > "$OUT/via2-verify.txt" 2>&1; log "DIAG via nosimd verify: $? $(tail -n 2 "$OUT/via2-verify.txt" | tr '\n' ' ')"; rm -f "$OUT/via-nosimd.save"
check one_copy
exit 0
