#include "jobs/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>

namespace duet::jobs {
namespace {

// argv[0] as a path: as given when it names a directory, else the first match on PATH. Done
// before fork: the child may only make async-signal-safe calls.
std::string Resolve(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::filesystem::path p = std::filesystem::path(dir.empty() ? "." : dir) / program;
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return program;
}

// Splits `buf` into lines for `log`; what follows the last newline stays in `buf` unless it is
// longer than max.
void EmitLines(std::string* buf, LogSink& log, size_t max, bool all) {
  size_t start = 0;
  while (true) {
    const size_t nl = buf->find('\n', start);
    const size_t len = (nl == std::string::npos ? buf->size() : nl) - start;
    if (len > max) {
      log.Line(std::string_view(*buf).substr(start, max));
      start += max;
      continue;
    }
    if (nl == std::string::npos) break;
    log.Line(std::string_view(*buf).substr(start, len));
    start = nl + 1;
  }
  if (all && start < buf->size()) {
    log.Line(std::string_view(*buf).substr(start));
    start = buf->size();
  }
  buf->erase(0, start);
}

}  // namespace

Status RunSubprocess(const std::vector<std::string>& argv, LogSink& log,
                     const SubprocessOptions& options) {
  if (argv.empty()) return Status::InvalidArgument("no program to run");
  const std::string program = Resolve(argv[0]);
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  int fds[2];
  // Close-on-exec: a child started by another handler at the same moment must not inherit this
  // pipe, or its reader would wait for that other child too.
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Status::IoError(std::string("cannot create a pipe: ") + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return Status::IoError("cannot start " + argv[0] + ": fork: " + std::strerror(err));
  }
  if (pid == 0) {
    // The child: async-signal-safe calls only, until exec.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    const int in = ::open("/dev/null", O_RDONLY);
    if (in >= 0) ::dup2(in, 0);
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::execv(program.c_str(), cargv.data());
    const char* msg = "exec failed: ";
    (void)!::write(2, msg, std::strlen(msg));
    const char* why = std::strerror(errno);
    (void)!::write(2, why, std::strlen(why));
    (void)!::write(2, "\n", 1);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here: whichever runs first, the group exists before a kill
  ::close(fds[1]);
  using Clock = std::chrono::steady_clock;
  std::string buf;
  bool eof = false, exited = false, cancelled = false, killed = false;
  Clock::time_point term_at;
  int status = 0;
  while (!exited || !eof) {
    if (!eof) {
      pollfd p{fds[0], POLLIN, 0};
      const int n = ::poll(&p, 1, 100);
      if (n > 0) {
        char chunk[8192];
        const ssize_t got = ::read(fds[0], chunk, sizeof chunk);
        if (got > 0) {
          buf.append(chunk, static_cast<size_t>(got));
          EmitLines(&buf, log, options.max_line_bytes, false);
        } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
          eof = true;
        }
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!exited) {
      const pid_t w = ::waitpid(pid, &status, WNOHANG);
      if (w == pid) {
        exited = true;
        // Output still in the pipe is read above; a grandchild holding the pipe open must not
        // keep the job running, so after the exit only what is already there is read.
        pollfd p{fds[0], POLLIN, 0};
        while (!eof && ::poll(&p, 1, 0) > 0) {
          char chunk[8192];
          const ssize_t got = ::read(fds[0], chunk, sizeof chunk);
          if (got <= 0) break;
          buf.append(chunk, static_cast<size_t>(got));
        }
        eof = true;
      }
    }
    if (!exited && !cancelled && log.cancelled()) {
      cancelled = true;
      term_at = Clock::now();
      ::kill(-pid, SIGTERM);
    }
    if (!exited && cancelled && !killed &&
        Clock::now() - term_at >= std::chrono::milliseconds(options.kill_grace_ms)) {
      killed = true;
      ::kill(-pid, SIGKILL);
    }
  }
  ::close(fds[0]);
  EmitLines(&buf, log, options.max_line_bytes, true);
  const std::string name = std::filesystem::path(argv[0]).filename().string();
  if (cancelled) {
    return Status::Aborted(name + " was stopped (" +
                           (killed ? std::string("SIGKILL") : std::string("SIGTERM")) + ")");
  }
  if (WIFEXITED(status)) {
    const int code = WEXITSTATUS(status);
    if (code == 0) return Status::Ok();
    if (code == 127) return Status::IoError(name + " could not be started (exit status 127)");
    return Status::Aborted(name + " exited with status " + std::to_string(code));
  }
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* sname = ::sigabbrev_np(sig);
    return Status::Aborted(name + " was killed by signal " + std::to_string(sig) +
                           (sname != nullptr ? " (SIG" + std::string(sname) + ")" : ""));
  }
  return Status::Aborted(name + " ended with wait status " + std::to_string(status));
}

JobHandler SubprocessHandler(
    std::function<Result<std::vector<std::string>>(const store::JobInfo&)> argv_for,
    SubprocessOptions options) {
  return
      [argv_for = std::move(argv_for), options](const store::JobInfo& job, LogSink& log) -> Status {
        auto argv = argv_for(job);
        if (!argv.ok()) return argv.status();
        std::string line = "$";
        for (const std::string& a : *argv) line += " " + a;
        log.Line(line);
        return RunSubprocess(*argv, log, options);
      };
}

JobHandler SubprocessHandler(std::vector<std::string> argv, SubprocessOptions options) {
  return SubprocessHandler(
      [argv = std::move(argv)](const store::JobInfo&) -> Result<std::vector<std::string>> {
        return argv;
      },
      options);
}

}  // namespace duet::jobs
