# realxen-guest: 32:2
# realxen job (issue 10): `xsr save --domain` of a 2-vcpu guest: every vcpu's records (inspect
# shows X86_PV_VCPU_BASIC for vcpus 0 and 1), `xsr verify --strict`, `xl restore -e` with the
# heartbeat continuing with the same md5 and both vcpus online again. On the host: the xsr file
# against `xl save -c` of the same guest (xl.save).
. ./common.sh
./xsr --version
xl vcpu-list "$GUEST"
ms xl save -c "$GUEST" "$OUT/xl.save" < /dev/null || fail=1
xl_ms=$MS
check runs_on

hb=$(last_heartbeat "$GUEST")
ms ./xsr save --domain "$GUEST" --out "$OUT/xsr.save" --json > "$OUT/save.json" || fail=1
xsr_ms=$MS
cat "$OUT/save.json"
check [ "$(json_str "$OUT/save.json" outcome)" = destroyed ]
check gone
check ./xsr verify --strict "$OUT/xsr.save"
./xsr inspect "$OUT/xsr.save" > "$OUT/xsr.inspect.txt"
grep VCPU "$OUT/xsr.inspect.txt"
# inspect's detail of a vcpu record begins "vcpu N,"
check grep -q 'X86_PV_VCPU_BASIC.*vcpu 0,' "$OUT/xsr.inspect.txt"
check grep -q 'X86_PV_VCPU_BASIC.*vcpu 1,' "$OUT/xsr.inspect.txt"

ms xl restore -e "$OUT/xsr.save" < /dev/null || log "xl restore exit $? (judged by the domain)"
check wait_heartbeat_after "$GUEST" "$hb" 120
check runs_on
xl vcpu-list "$GUEST"
# both vcpus online: vcpu-list's State column ("r--", "-b-") has r or b and no p (an offline or
# paused vcpu shows "--p")
check [ "$(xl vcpu-list "$GUEST" | awk 'NR > 1 && $5 ~ /[rb]/ && $5 !~ /p/' | wc -l)" = 2 ]

figure xl-save-c-ms "$xl_ms"
figure xsr-save-ms "$xsr_ms"
figure ratio-xl-save-vs-xsr-save-wall-2vcpu "$(ratio "$xl_ms" "$xsr_ms")"
figure xsr-save-downtime-ms "$(json_field "$OUT/save.json" downtime_ms)"
exit $fail
