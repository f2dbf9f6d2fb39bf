# realxen-guest: 32:1
# realxen-guest-type: pv
# realxen job (issue 14): restores through xsr that must fail, each with an error and no domain
# left (Xen's own helper disabled): a truncated stream; a page table whose entry names a pfn
# beyond the p2m (a rule of the stream: refused by xsr before Xen sees it); an L4 table that maps
# itself writable (within the rules, refused by Xen when it validates the tables: the error names
# the table's pfn, mfn and type); the helper killed with SIGKILL in the middle of the stream, under
# `xl restore` and under `xsr restore --domain`. Then the good file still restores and runs.
. ./common.sh
. ./lib-restore-faults.sh
faults_job
exit $fail
