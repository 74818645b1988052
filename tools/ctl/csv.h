// csv.h — one field of the CSV files voucherctl writes (the settlement
// exports), safe to open in a spreadsheet.
//
// Usage:
//   out << csv_field(record.member_id()) << ',' << csv_field(record.site_id()) << '\n';
//
// A field is quoted (RFC 4180) when it holds a separator, a quote or a line
// break. A field that a spreadsheet would read as a formula (it starts with
// =, +, -, @, a tab or a carriage return: OWASP "CSV injection") is written
// behind a single quote, and quoted, so it shows as text: =1+1 becomes "'=1+1".
// Numbers are written by the caller directly, not through csv_field(), so a
// negative amount stays a number.
#pragma once

#include <string>
#include <string_view>

namespace voucherd::ctl {

[[nodiscard]] std::string csv_field(std::string_view field);

}  // namespace voucherd::ctl
