// loopback.h — whether a listen address stays on this machine.
#pragma once

#include <string_view>

namespace voucherd {

// Whether a listen address (HOST:PORT, HOST an IP address, IPv6 in brackets
// or not) binds only the loopback interface: 127.0.0.0/8 or ::1. A wildcard
// (0.0.0.0, ::), a host name or any other address reaches a network.
[[nodiscard]] bool binds_loopback_only(std::string_view listen);

}  // namespace voucherd
