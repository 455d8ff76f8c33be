// Jobs that run a child process: `duet train …`, `duet batch …` (docs/jobs.md).
//
// RunSubprocess forks and execs argv (no shell: nothing in it is interpreted), with stdin from
// /dev/null and stdout and stderr into one pipe whose lines go to the job's log. The child runs
// in a process group of its own (so a terminal's Ctrl-C reaches the worker, which decides) and
// is killed by the kernel if the thread that started it dies (PR_SET_PDEATHSIG: a worker killed
// with SIGKILL leaves no orphan running the job the store then fails). When the sink is
// cancelled, the group gets SIGTERM, then SIGKILL after kill_grace_ms.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "jobs/runner.h"
#include "util/result.h"

namespace duet::jobs {

struct SubprocessOptions {
  int64_t kill_grace_ms = 5'000;  // SIGTERM to SIGKILL
  size_t max_line_bytes = 4'096;  // a longer line is split
};

// Ok iff the child exits with status 0. Otherwise an error naming the program and its exit
// status or signal ("duet exited with status 1"); when cancelled, Aborted. IoError when it
// cannot be started (the message names the program and the reason).
Status RunSubprocess(const std::vector<std::string>& argv, LogSink& log,
                     const SubprocessOptions& options = {});

// A handler that runs `argv_for(job)` (an error from it fails the job without starting
// anything).
JobHandler SubprocessHandler(
    std::function<Result<std::vector<std::string>>(const store::JobInfo&)> argv_for,
    SubprocessOptions options = {});
// A handler that runs the same argv for every job.
JobHandler SubprocessHandler(std::vector<std::string> argv, SubprocessOptions options = {});

}  // namespace duet::jobs
