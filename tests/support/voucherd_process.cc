#include "tests/support/voucherd_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace voucherd::testing {
namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

pid_t spawn(const std::vector<std::string>& args, const std::filesystem::path& stderr_path,
            const std::filesystem::path& stdout_path = "/dev/null") {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

}  // namespace

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/voucherd-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::filesystem::path TempDir::write(const std::string& name, const std::string& content) const {
  const auto p = path_ / name;
  std::ofstream(p) << content;
  return p;
}

VoucherdProcess::VoucherdProcess(const TempDir& dir, std::vector<std::string> args,
                                 std::chrono::milliseconds startup) {
  static int counter = 0;
  const std::string name = "voucherd-" + std::to_string(++counter);
  const auto port_file = dir.path() / (name + ".port");
  const auto ops_port_file = dir.path() / (name + ".ops-port");
  stderr_path_ = dir.path() / (name + ".stderr");
  std::vector<std::string> full{VOUCHERD_BINARY, "--listen",         "127.0.0.1:0",
                                "--port-file",   port_file.string(), "--ops-listen",
                                "127.0.0.1:0",   "--ops-port-file",  ops_port_file.string()};
  full.insert(full.end(), args.begin(), args.end());
  pid_ = spawn(full, stderr_path_);
  if (pid_ < 0) {
    ADD_FAILURE() << "cannot spawn " << VOUCHERD_BINARY;
    return;
  }
  const auto deadline = std::chrono::steady_clock::now() + startup;
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::filesystem::exists(port_file)) {
      port_ = std::atoi(read_file(port_file).c_str());
      // The ops port file is written before the gRPC one.
      ops_port_ = std::atoi(read_file(ops_port_file).c_str());
      if (port_ > 0) return;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      ADD_FAILURE() << "voucherd exited at start:\n" << stderr_text();
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "voucherd did not listen within " << startup.count() << " ms:\n"
                << stderr_text();
}

VoucherdProcess::~VoucherdProcess() {
  if (pid_ > 0) stop(SIGKILL, std::chrono::seconds(10));
}

void VoucherdProcess::send_signal(int signal) const {
  if (pid_ > 0) ::kill(pid_, signal);
}

std::optional<int> VoucherdProcess::stop(int signal, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  kill(pid_, signal);
  auto status = wait_exit(pid_, timeout);
  if (!status) {
    kill(pid_, SIGKILL);
    wait_exit(pid_, std::chrono::seconds(10));
  }
  pid_ = -1;
  return status;
}

std::string VoucherdProcess::stderr_text() const { return read_file(stderr_path_); }

int run_voucherd(const TempDir& dir, const std::vector<std::string>& args, std::string* stderr_out,
                 std::chrono::milliseconds timeout) {
  std::vector<std::string> full{VOUCHERD_BINARY};
  full.insert(full.end(), args.begin(), args.end());
  return run_program(dir, full, nullptr, stderr_out, timeout);
}

int run_program(const TempDir& dir, const std::vector<std::string>& argv, std::string* stdout_out,
                std::string* stderr_out, std::chrono::milliseconds timeout) {
  const auto err = dir.path() / "run.stderr";
  const auto out = dir.path() / "run.stdout";
  const pid_t pid = spawn(argv, err, out);
  if (pid < 0) return -1;
  auto status = wait_exit(pid, timeout);
  if (!status) {
    kill(pid, SIGKILL);
    wait_exit(pid, std::chrono::seconds(10));
  }
  if (stdout_out) *stdout_out = read_file(out);
  if (stderr_out) *stderr_out = read_file(err);
  return status.value_or(-1);
}

std::string test_secret_hex() {
  return "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";
}

}  // namespace voucherd::testing
