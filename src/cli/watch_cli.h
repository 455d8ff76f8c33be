// `duet watch`: a supervisor for Duet processes on one machine (docs/operations.md, "Supervision:
// duet watch and Kubernetes probes").
//
//   duet watch --processes watch.json [--interval 2s] [--timeout 1s] [--log-dir DIR]
//              [--webhook URL] [--status-listen HOST:PORT]
//
// Every process of the JSON file is probed on its status URL (/healthz each --interval, /metrics
// too when it has `stuck_after`). A process with a `command` is watch's child: started at once,
// restarted with a capped exponential back-off when it exits ("down") or stops answering
// ("stuck": killed with SIGKILL first). A process without one is only monitored. Every
// transition is a JSON log line on stderr and an alert POSTed to --webhook (retried a bounded
// number of times on a thread of its own: a dead webhook never delays supervision).
// SIGTERM/SIGINT stop the children (SIGTERM, their grace, SIGKILL) and exit 0.
// Exit codes: 0 after SIGTERM/SIGINT, 1 when the status server cannot start, 2 for a bad option
// or process file.
#pragma once

#include <string>
#include <vector>

namespace duet {

// `args` are the arguments after the command. Returns the process exit code.
int CmdWatch(const std::vector<std::string>& args);

}  // namespace duet
