#include "tests/support/http_get.h"

// <utility> first: Boost 1.74's Asio uses std::exchange without including it.
// clang-format off
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
// clang-format on

namespace voucherd::testing {

HttpAnswer http_get(int port, const std::string& target, const HttpHeaders& headers) {
  return http_request(port, "GET", target, headers);
}

HttpAnswer http_request(int port, const std::string& method, const std::string& target,
                        const HttpHeaders& headers) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  using tcp = boost::asio::ip::tcp;
  HttpAnswer out;
  try {
    boost::asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(10));
    stream.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                 static_cast<unsigned short>(port)));
    http::request<http::empty_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [name, value] : headers) req.set(name, value);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[http::field::content_type]);
    out.body = res.body();
    const auto [first, last] = res.equal_range(http::field::www_authenticate);
    for (auto it = first; it != last; ++it) out.www_authenticate.emplace_back(it->value());
  } catch (const std::exception&) {
    out.status = 0;
  }
  return out;
}

}  // namespace voucherd::testing
