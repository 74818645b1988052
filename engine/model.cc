// model.cc — VoucherRecord: how one voucher keeps its fields.
#include "engine/model.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "engine/check.h"

namespace voucherd {
namespace {

const std::string& no_text() {
  static const std::string empty;
  return empty;
}

// A heap block holding `text`: its size (4 bytes), then its bytes. Freed
// with delete[].
char* new_sized_block(std::string_view text) {
  const auto size = static_cast<std::uint32_t>(text.size());
  VOUCHERD_CHECK(size == text.size(), "a kept string's size fits 32 bits");
  char* block = new char[sizeof size + text.size()];
  std::memcpy(block, &size, sizeof size);
  std::memcpy(block + sizeof size, text.data(), text.size());
  return block;
}

std::string_view sized_block_text(const char* block) {
  std::uint32_t size = 0;
  std::memcpy(&size, block, sizeof size);
  return {block + sizeof size, size};
}

}  // namespace

const char* mode_name(CampaignMode mode) {
  switch (mode) {
    case CampaignMode::kFirstCome:
      return "CAMPAIGN_MODE_FIRST_COME";
    case CampaignMode::kLottery:
      return "CAMPAIGN_MODE_LOTTERY";
    case CampaignMode::kApplyThenDraw:
      return "CAMPAIGN_MODE_APPLY_THEN_DRAW";
    case CampaignMode::kUnspecified:
      break;
  }
  return "CAMPAIGN_MODE_UNSPECIFIED";
}

std::string_view mode_label(CampaignMode mode) {
  std::string_view name = mode_name(mode);
  name.remove_prefix(std::string_view("CAMPAIGN_MODE_").size());
  return name;
}

VoucherExtras::VoucherExtras(std::string_view request_id, const RedemptionRecord* redemption) {
  if (request_id.empty() && redemption == nullptr) return;
  const auto size = static_cast<std::uint32_t>(request_id.size());
  VOUCHERD_CHECK(size == request_id.size() && (size & kRedeemed) == 0,
                 "a request id's size leaves the top bit free");
  // The redemption is the block's once the block is made (a half-made one
  // frees it).
  auto own = redemption != nullptr ? std::make_unique<const RedemptionRecord>(*redemption)
                                   : std::unique_ptr<const RedemptionRecord>();
  const std::uint32_t header = size | (own != nullptr ? kRedeemed : 0);
  block_ = new char[sizeof header + size + (own != nullptr ? sizeof(RedemptionRecord*) : 0)];
  std::memcpy(block_, &header, sizeof header);
  if (size > 0) std::memcpy(block_ + sizeof header, request_id.data(), size);
  if (own != nullptr) {
    const RedemptionRecord* kept = own.release();
    std::memcpy(block_ + sizeof header + size, &kept, sizeof kept);
  }
}

VoucherExtras::~VoucherExtras() {
  if (block_ == nullptr) return;
  delete redemption();
  delete[] block_;
}

ShortString::ShortString(std::string_view text) {
  if (text.size() <= kInlineBytes) {
    std::copy(text.begin(), text.end(), bytes_);
    size_ = static_cast<std::uint8_t>(text.size());
    return;
  }
  char* block = new_sized_block(text);
  std::memcpy(bytes_, &block, sizeof block);
  size_ = kSpilled;
}

ShortString::ShortString(ShortString&& other) noexcept : size_(other.size_) {
  std::memcpy(bytes_, other.bytes_, kInlineBytes);
  other.size_ = 0;
}

ShortString& ShortString::operator=(ShortString&& other) noexcept {
  if (this != &other) {
    release();
    std::memcpy(bytes_, other.bytes_, kInlineBytes);
    size_ = other.size_;
    other.size_ = 0;
  }
  return *this;
}

ShortString::~ShortString() { release(); }

void ShortString::release() {
  if (size_ != kSpilled) return;
  char* block = nullptr;
  std::memcpy(&block, bytes_, sizeof block);
  delete[] block;
  size_ = 0;
}

std::string_view ShortString::view() const {
  if (size_ != kSpilled) return {bytes_, size_};
  const char* block = nullptr;
  std::memcpy(&block, bytes_, sizeof block);
  return sized_block_text(block);
}

VoucherRecord::VoucherRecord(const VoucherSku* sku, bool owns_sku, const PackedCode& code,
                             std::string_view member_id, std::string_view request_id,
                             UnixMicros issued_at_us)
    : sku_(sku),
      extras_(request_id, nullptr),
      member_id_(member_id),
      issued_at_us_(issued_at_us),
      code_(code) {
  VOUCHERD_CHECK(sku_ != nullptr, "every voucher is of a SKU");
  if (owns_sku) bits_ |= kOwnsSku;
}

VoucherRecord::VoucherRecord(const VoucherRecord& other, VoucherState state)
    : sku_(other.sku_),
      extras_(other.extras_),
      member_id_(other.member_id_),
      issued_at_us_(other.issued_at_us_),
      bits_(other.bits_),
      code_(other.code_) {
  // Held here until the body is done: a half-built record's destructor
  // does not run.
  std::unique_ptr<const VoucherSku> own_sku;
  if ((bits_ & kOwnsSku) != 0) own_sku = std::make_unique<const VoucherSku>(*other.sku_);
  if (own_sku != nullptr) sku_ = own_sku.release();
  set_state(state);
}

VoucherRecord::~VoucherRecord() {
  if ((bits_ & kOwnsSku) != 0) delete sku_;
}

VoucherPtr VoucherRecord::make(const VoucherSku* sku, const PackedCode& code,
                               std::string_view member_id, std::string_view request_id,
                               UnixMicros issued_at_us) {
  return VoucherPtr::adopt(
      new VoucherRecord(sku, /*owns_sku=*/false, code, member_id, request_id, issued_at_us));
}

VoucherPtr VoucherRecord::make(const VoucherFields& f) {
  auto sku = std::make_unique<const VoucherSku>(
      VoucherSku{f.campaign_id, f.sku_id, f.site_id, f.sku_kind, f.face_value_cents,
                 // Modulo 2^64: expires_at_us() adds it back to the same time.
                 static_cast<UnixMicros>(static_cast<std::uint64_t>(f.expires_at_us) -
                                         static_cast<std::uint64_t>(f.issued_at_us))});
  const std::optional<PackedCode> code = PackedCode::pack(f.code);
  VOUCHERD_CHECK(code.has_value(),
                 "codes are minted in display form, and stores refuse any other when reading");
  auto* v = new VoucherRecord(sku.get(), /*owns_sku=*/true, *code, f.member_id, f.request_id,
                              f.issued_at_us);
  sku.release();  // the record's own now
  VoucherPtr p = VoucherPtr::adopt(v);
  v->set_state(f.state);
  if (f.state == VoucherState::kRedeemed) {
    const RedemptionRecord redemption{f.redeemed_site_id, f.redeemed_at_us, f.redeem_request_id};
    v->extras_ = VoucherExtras(f.request_id, &redemption);
  }
  return p;
}

VoucherPtr VoucherRecord::with_state(VoucherState state) const {
  return VoucherPtr::adopt(new VoucherRecord(*this, state));
}

VoucherPtr VoucherRecord::redeemed(std::string_view site_id, UnixMicros at_us,
                                   std::string_view request_id) const {
  auto* v = new VoucherRecord(*this, VoucherState::kRedeemed);
  VoucherPtr p = VoucherPtr::adopt(v);
  const RedemptionRecord redemption{std::string(site_id), at_us, std::string(request_id)};
  v->extras_ = VoucherExtras(extras_.request_id(), &redemption);
  return p;
}

const std::string& VoucherRecord::redeemed_site_id() const {
  const RedemptionRecord* r = extras_.redemption();
  return r != nullptr ? r->site_id : no_text();
}

const std::string& VoucherRecord::redeem_request_id() const {
  const RedemptionRecord* r = extras_.redemption();
  return r != nullptr ? r->request_id : no_text();
}

}  // namespace voucherd
