// model.cc — VoucherRecord: how one voucher keeps its fields.
#include "engine/model.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "engine/check.h"

namespace voucherd {
namespace {

const std::string& no_text() {
  static const std::string empty;
  return empty;
}

}  // namespace

KeptString::KeptString(std::string_view text) {
  if (text.empty()) return;
  const auto size = static_cast<std::uint32_t>(text.size());
  VOUCHERD_CHECK(size == text.size(), "a kept string's size fits 32 bits");
  block_ = std::make_unique_for_overwrite<char[]>(sizeof size + text.size());
  std::memcpy(block_.get(), &size, sizeof size);
  std::memcpy(block_.get() + sizeof size, text.data(), text.size());
}

std::string_view KeptString::view() const {
  if (block_ == nullptr) return {};
  std::uint32_t size = 0;
  std::memcpy(&size, block_.get(), sizeof size);
  return {block_.get() + sizeof size, size};
}

VoucherRecord::VoucherRecord(std::shared_ptr<const VoucherSku> sku, std::string_view code,
                             std::string_view member_id, std::string_view request_id,
                             UnixMicros issued_at_us, UnixMicros expires_at_us)
    : sku_(std::move(sku)),
      member_id_(member_id),
      request_id_(request_id),
      issued_at_us_(issued_at_us),
      expires_at_us_(expires_at_us),
      code_size_(static_cast<std::uint8_t>(code.size())) {
  VOUCHERD_CHECK(sku_ != nullptr, "every voucher is of a SKU");
  VOUCHERD_CHECK(code.size() <= code_.size(),
                 "codes are minted in display form, and stores refuse longer ones when reading");
  std::copy(code.begin(), code.end(), code_.begin());
}

VoucherRecord::VoucherRecord(const VoucherFields& f)
    : VoucherRecord(std::make_shared<const VoucherSku>(VoucherSku{
                        f.campaign_id, f.sku_id, f.site_id, f.sku_kind, f.face_value_cents}),
                    f.code, f.member_id, f.request_id, f.issued_at_us, f.expires_at_us) {
  state_ = f.state;
  if (f.state == VoucherState::kRedeemed) {
    redemption_ = std::make_shared<const RedemptionRecord>(
        RedemptionRecord{f.redeemed_site_id, f.redeemed_at_us, f.redeem_request_id});
  }
}

VoucherPtr VoucherRecord::with_state(VoucherState state) const {
  auto v = std::make_shared<VoucherRecord>(*this);
  v->state_ = state;
  return v;
}

VoucherPtr VoucherRecord::redeemed(std::string_view site_id, UnixMicros at_us,
                                   std::string_view request_id) const {
  auto v = std::make_shared<VoucherRecord>(*this);
  v->state_ = VoucherState::kRedeemed;
  v->redemption_ = std::make_shared<const RedemptionRecord>(
      RedemptionRecord{std::string(site_id), at_us, std::string(request_id)});
  return v;
}

const std::string& VoucherRecord::redeemed_site_id() const {
  return redemption_ ? redemption_->site_id : no_text();
}

const std::string& VoucherRecord::redeem_request_id() const {
  return redemption_ ? redemption_->request_id : no_text();
}

}  // namespace voucherd
