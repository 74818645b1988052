// csv_test.cc — proves that voucherctl's CSV fields quote separators and
// neutralise formula injection (OWASP: =, +, -, @, tab, CR at the start),
// and leave plain ids as they are.
#include "tools/ctl/csv.h"

#include <gtest/gtest.h>

namespace voucherd::ctl {
namespace {

TEST(VoucherctlCsv, PlainFieldsAreWrittenAsTheyAre) {
  EXPECT_EQ(csv_field("member-42"), "member-42");
  EXPECT_EQ(csv_field("4KZ1Q-ABCDE-7"), "4KZ1Q-ABCDE-7");
  EXPECT_EQ(csv_field(""), "");
  EXPECT_EQ(csv_field("a=b"), "a=b");  // only a leading = starts a formula
}

TEST(VoucherctlCsv, SeparatorsQuotesAndLineBreaksAreQuoted) {
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("a\nb"), "\"a\nb\"");
}

TEST(VoucherctlCsv, FormulasAreWrittenAsText) {
  EXPECT_EQ(csv_field("=1+1"), "\"'=1+1\"");
  EXPECT_EQ(csv_field("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
  EXPECT_EQ(csv_field("+86 138"), "\"'+86 138\"");
  EXPECT_EQ(csv_field("-2+3"), "\"'-2+3\"");
  EXPECT_EQ(csv_field("@SUM(A1)"), "\"'@SUM(A1)\"");
  EXPECT_EQ(csv_field("\tx"), "\"'\tx\"");
  EXPECT_EQ(csv_field("\rx"), "\"'\rx\"");
}

}  // namespace
}  // namespace voucherd::ctl
