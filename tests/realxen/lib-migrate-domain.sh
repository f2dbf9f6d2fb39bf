# The body of migrate-domain-pvh.sh and migrate-domain-hvm.sh (the guest type from the job's
# `# realxen-guest-type:` line): xsr -> xsr over TLS, stock xl into xsr migrate-receive, the
# downtime pairs and the faults, in one boot.
. ./common.sh
./xsr --version
ip link set lo up
# The host must keep dom0's vector registers, or TLS records and heaps break (docs/xen.md).
check host_fpu
xsr_into_xsr_job
xl_into_xsr_job
downtime_pairs 3
migrate_faults_job
exit $fail
