"""Exit statuses of the sweep commands (shared by the CLI and the driver; no Ray)."""

OK = 0
FAILED_TRIALS = 1  # the stage ran, some trials failed (see the results table and the trial folders)
BAD_INPUT = 2  # a bad sweep file, override, argument or input file: nothing was started
CANNOT_RUN = 3  # the plan cannot run here: resources, the cluster, the storage (unusable, a symlink or FIFO in it,
# a disk that fills: the file is named), another driver, or a private Ray instance that does not start
INTERRUPTED = 130  # stopped before the stage finished (Ctrl-C, the private instance's raylet or GCS lost, a Ray
# system error): rerun the command to continue
TERMINATED = 143  # the same, stopped by SIGTERM (a scheduler, `kill`, `ray job stop`)
