# Several job bodies in one boot (an HVM guest takes 15-20 s to boot under TCG, and the real Xen
# is one machine shared by everyone): `part DIR JOB` runs JOB.sh (another job of this folder,
# which `cargo xtask realxen` copies in with the job that names it) in a subshell, its outputs
# in $OUT/DIR, where the host-side checks of JOB look for them. The parts share the job's guest
# (its `# realxen-guest:` line, not theirs). Before each part the guest must be as a job finds
# it: running unpaused with a new heartbeat of the pattern's md5 and, for PVH and HVM, log-dirty
# off and QEMU running; if it is not (a part before failed), it is created afresh (logged as
# PART-FRESH-GUEST and a failed check) so that the next part still runs.
. ./common.sh
. ./lib-hvm.sh
# The room for the outputs (`# realxen-xfer-mb:`, cargo xtask realxen's xfer-room file) freed.
rm -f ./xfer-room
part() {
    _top=$OUT
    mkdir -p "$_top/$1"
    cp "$_top/guest.cfg" "$_top/$1/"
    DOMID=$(xl domid "$GUEST" 2>/dev/null)
    if ! part_ready; then
        log "CHECK-FAIL PART-FRESH-GUEST before part $1: the guest is not as a job finds it"
        fail=1
        fresh_guest || { log "CHECK-FAIL part $1 not run: the guest cannot be created again"; return 1; }
    fi
    log "PART-BEGIN $1 ($2.sh)"
    ( OUT=$_top/$1; . "./$2.sh" ); _rc=$?
    log "PART-END $1 ($2.sh): exit $_rc"
    [ $_rc -eq 0 ] || fail=1
    DOMID=$(xl domid "$GUEST" 2>/dev/null)
}
# part_ready: the guest is as a job finds it (PV: Debian's Xen has no log-dirty mode for PV
# guests to ask about, so running with the pattern's md5 is all)
part_ready() { if [ "$GUEST_TYPE" = pv ]; then runs_on; else left_as_found; fi; }
