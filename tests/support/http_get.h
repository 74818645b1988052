// http_get.h — a blocking HTTP/1.1 GET to 127.0.0.1, for tests of the ops port.
#pragma once

#include <string>

namespace voucherd::testing {

struct HttpAnswer {
  int status = 0;  // 0: no answer (connection failed)
  std::string content_type;
  std::string body;
};

[[nodiscard]] HttpAnswer http_get(int port, const std::string& target);

}  // namespace voucherd::testing
