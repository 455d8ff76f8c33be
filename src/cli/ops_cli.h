// Commands for deployments (docs/deploy.md):
//   duet probe  [--url http://127.0.0.1:8080/healthz] [--timeout 2s]
//       the image's HEALTHCHECK: GET the URL, exit 0 on a 2xx answer, 1 otherwise (the reason
//       on stderr). No curl in a slim image.
//   duet import --input DIR --out mongodb://HOST:PORT/DB.COLLECTION [--shards N --shard-index I]
//       a backfill: loads historical NDJSON files into the master dataset kept in MongoDB,
//       shard I of N taking every N-th file of the sorted list (a Kubernetes Indexed Job runs
//       one shard per pod). Idempotent: every line is one document whose _id names the file and
//       the line, so a shard run again, or twice at once, leaves the same documents.
#pragma once

#include <string>
#include <vector>

namespace duet {

// `args` are the arguments after the command. Return the process exit code.
int CmdProbe(const std::vector<std::string>& args);
int CmdImport(const std::vector<std::string>& args);

}  // namespace duet
