// `duet jobs`: the job worker and the operators' commands (docs/jobs.md).
//   duet jobs worker --store URI --input MASTER [--kinds train,batch] [--schedule-batch 30m|0]
//   duet jobs submit --store URI --kind KIND [--params JSON]
//   duet jobs list   --store URI [--limit N] [--json]
//   duet jobs show   --store URI --id N [--json]
#pragma once

#include <string>
#include <vector>

namespace duet {

// `args` are the arguments after "jobs". Returns the process exit code.
int CmdJobs(const std::vector<std::string>& args);

}  // namespace duet
