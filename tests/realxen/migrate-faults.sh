# realxen-guest: 32:1:100
# realxen job (issue 16): faults at every step of a live migration into a new domain within one
# dom0 (`xsr send --domain --live` into `xsr receive --domain`, Xen's helper disabled), each
# checked for exactly one running copy of the guest afterwards with its heartbeat continuing and
# the pattern md5:
#  - the network cut (a relay resets both connections) during the stream, during the hand-over
#    (the sender renamed its copy away, GO not yet sent), and after it (GO delivered, the
#    receiver's report not yet written);
#  - the receiver killed (SIGKILL of its worker process) during the stream, restored before READY,
#    and after GO before it started its copy;
#  - the sender killed (SIGKILL of its worker process) during the stream, renamed away before GO,
#    and after GO.
#  - a receiver that cannot create the domain (a paused domain holds all but 16 MiB of the free
#    memory: nomem_fault).
# XSR_TEST_HOLD makes a side wait at a named stage, so that each fault lands where it is meant to.
# The body is migrate_faults_job (common.sh), which migrate-domain and migrate-domain-hvm also run
# (after their migrations, in the same boot).
. ./common.sh
migrate_faults_job
exit $fail
