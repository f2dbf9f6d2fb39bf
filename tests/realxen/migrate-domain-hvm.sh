# realxen-guest: 32:1:100
# realxen-guest-type: hvm
# realxen-tls
# realxen job (issue 16): live migration of the hvm guest (rewriting 100 pages a second) within one
# dom0, each time ending with the guest running in a new domain, exactly one copy, its heartbeat
# continuing with the pattern md5:
#  1. `xsr send --domain --live` into `xsr receive --domain` over TLS 1.3 (mutual certificates),
#     twice, Xen's helper disabled (plaintext rounds too when a TLS round fails: xsr_into_xsr_job);
#  2. stock `xl migrate` (Xen's helper saving) into `xsr migrate-receive` (Xen's helper disabled
#     in the receiver's mount namespace), twice (xl_into_xsr_job);
#  3. the downtime, in the same boot: xsr send/receive against `xl migrate` into
#     `xl migrate-receive` with xsr as the receiving side's save helper, 3 times each, alternately
#     (downtime_pairs);
#  4. the faults of migrate-faults.sh (network cut, receiver or sender SIGKILLed at each stage, a
#     receiver that cannot create the domain) for the HVM guest, whose copies each have a device
#     model (QEMU) in dom0 and whose pre-copy uses Xen's log-dirty mode (migrate_faults_job).
# One boot for all of it: the real Xen is shared.
. ./lib-migrate-domain.sh
