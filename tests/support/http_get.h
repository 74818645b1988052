// http_get.h — a blocking HTTP/1.1 GET to 127.0.0.1, for tests of the ops port.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace voucherd::testing {

struct HttpAnswer {
  int status = 0;  // 0: no answer (connection failed)
  std::string content_type;
  std::string body;
  std::vector<std::string> www_authenticate;  // every WWW-Authenticate header
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

[[nodiscard]] HttpAnswer http_get(int port, const std::string& target,
                                  const HttpHeaders& headers = {});
// The same request with another method (e.g. "POST"), without a body.
[[nodiscard]] HttpAnswer http_request(int port, const std::string& method,
                                      const std::string& target, const HttpHeaders& headers = {});

}  // namespace voucherd::testing
