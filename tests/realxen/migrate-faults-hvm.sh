# realxen-guest: 32:1:100
# realxen-guest-type: hvm
# realxen job (issue 16): the faults of migrate-faults.sh (network cut, receiver or sender
# SIGKILLed at each stage, a receiver that cannot create the domain) for the HVM guest, whose
# copies each have a device model (QEMU) in dom0 and whose pre-copy uses Xen's log-dirty mode:
# after each, exactly one running copy with its heartbeat continuing and the pattern md5.
. ./common.sh
migrate_faults_job
exit $fail
