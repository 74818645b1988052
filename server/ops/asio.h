// asio.h — Boost.Asio and Beast as voucherd includes them. Boost 1.74's
// asio/awaitable.hpp uses std::exchange without including <utility>, which
// C++23 libstdc++ headers no longer pull in for it: include it first.
#pragma once

// clang-format off
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
// clang-format on
