// Status: the outcome of an operation that can fail for expected reasons (bad input, I/O,
// unavailable store). Cheap to copy when ok. Modeled on leveldb's Status.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace duet {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller passed something malformed (flag, URI, file contents)
  kNotFound,            // a named thing does not exist
  kIoError,             // the operating system refused a read or a write
  kCorruption,          // stored data is unreadable or inconsistent
  kUnavailable,         // a server or store cannot be reached now; retrying may help
  kNotSupported,        // valid request that this build or backend cannot serve
  kAborted,             // stopped on purpose (signal, shutdown), or lost a compare-and-set
  kFailedPrecondition,  // valid request, but the state does not allow it (e.g. too little data)
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string msg) {
    return {StatusCode::kInvalidArgument, std::move(msg)};
  }
  static Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status IoError(std::string msg) { return {StatusCode::kIoError, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {StatusCode::kCorruption, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {StatusCode::kUnavailable, std::move(msg)}; }
  static Status NotSupported(std::string msg) {
    return {StatusCode::kNotSupported, std::move(msg)};
  }
  static Status Aborted(std::string msg) { return {StatusCode::kAborted, std::move(msg)}; }
  static Status FailedPrecondition(std::string msg) {
    return {StatusCode::kFailedPrecondition, std::move(msg)};
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "<code name>: <message>", or "ok".
  std::string ToString() const;

 private:
  Status(StatusCode code, std::string msg) : code_(code), message_(std::move(msg)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

#define DUET_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::duet::Status duet_status_ = (expr);        \
    if (!duet_status_.ok()) return duet_status_; \
  } while (0)

}  // namespace duet
