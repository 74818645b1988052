// voucherd_process.h — test support: real voucherd processes and temp dirs.
//
// VoucherdProcess starts the built voucherd binary on 127.0.0.1 port 0 with
// --port-file, waits until it listens, and stops it with SIGTERM (or SIGKILL)
// on request or at destruction. Its stderr goes to a file in the temp dir.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace voucherd::testing {

// A fresh directory under $TMPDIR, removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  // Writes `content` to a file in the dir and returns its path.
  std::filesystem::path write(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

// A file's whole text ("" when it cannot be read).
[[nodiscard]] std::string read_text(const std::filesystem::path& path);

class VoucherdProcess {
 public:
  // Starts voucherd with `args` plus --listen 127.0.0.1:0 --port-file ...
  // Fails the test (ADD_FAILURE) and leaves port() == 0 if it does not listen
  // within `startup`.
  VoucherdProcess(const TempDir& dir, std::vector<std::string> args,
                  std::chrono::milliseconds startup = std::chrono::seconds(20));
  ~VoucherdProcess();
  VoucherdProcess(const VoucherdProcess&) = delete;
  VoucherdProcess& operator=(const VoucherdProcess&) = delete;

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] int ops_port() const { return ops_port_; }
  [[nodiscard]] std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  // Sends `signal` and waits for exit; returns the exit status (or 128+signal
  // when killed by a signal), nullopt on timeout (then it is SIGKILLed).
  std::optional<int> stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  [[nodiscard]] std::string stderr_text() const;
  // Sends `signal` (SIGSTOP, SIGCONT, ...) without waiting.
  void send_signal(int signal) const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int ops_port_ = 0;
  std::filesystem::path stderr_path_;
};

// Runs the voucherd binary to completion with `args` (no listen flags added);
// returns its exit status, and its stderr in `stderr_out`.
int run_voucherd(const TempDir& dir, const std::vector<std::string>& args, std::string* stderr_out,
                 std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Runs argv[0] (a path) to completion; returns its exit status (128+signal
// when killed, -1 if it could not start or did not end within `timeout`,
// when it is SIGKILLed), with its stdout and stderr.
int run_program(const TempDir& dir, const std::vector<std::string>& argv, std::string* stdout_out,
                std::string* stderr_out,
                std::chrono::milliseconds timeout = std::chrono::seconds(60));

// 64 hex digits: a secret file's content.
std::string test_secret_hex();

}  // namespace voucherd::testing
