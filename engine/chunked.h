// chunked.h — append-only storage whose items never move.
//
// Chunked<T, kFirst, kMax> keeps items in chunks that are allocated as they
// are needed: the first holds kFirst items, each next one twice as many, up
// to kMax per chunk. Pointers and references to items stay valid for the
// container's life (nothing is moved or freed before it), and an item is
// also reached by its number (the order of appending). A container that
// holds nothing costs a vector; one with a few items costs a small chunk.
//
// ByteArena keeps byte strings the same way: append() copies the bytes into
// the current chunk (a new one when they do not fit) and returns where they
// now live.
//
// Usage:
//   Chunked<Record, 16, 4096> records;
//   Record& r = records.push_back(Record{...});   // number records.size() - 1
//   Record& same = records[n];
//   ByteArena<256, 16384> bytes;
//   const char* kept = bytes.append(id);
//
// Thread-safety: none; the owner serialises every call.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "engine/check.h"

namespace voucherd {

template <class T, std::uint32_t kFirst, std::uint32_t kMax>
class Chunked final {
  static_assert(std::has_single_bit(kFirst) && std::has_single_bit(kMax) && kFirst <= kMax,
                "chunk sizes are powers of two, growing to kMax");
  // Chunks 0 .. kGrowing-1 double in size; the ones after hold kMax each.
  static constexpr std::uint32_t kGrowing = std::countr_zero(kMax / kFirst) + 1;
  static constexpr std::uint64_t kGrowingItems = std::uint64_t{kFirst} * ((1ULL << kGrowing) - 1);

 public:
  [[nodiscard]] std::uint32_t size() const { return size_; }

  T& push_back(T item) {
    VOUCHERD_CHECK(size_ < UINT32_MAX, "an item's number fits 32 bits");
    const Place p = place(size_);
    if (p.chunk == chunks_.size()) chunks_.push_back(std::make_unique<T[]>(chunk_size(p.chunk)));
    T& slot = chunks_[p.chunk][p.offset];
    slot = std::move(item);
    ++size_;
    return slot;
  }

  // The item numbered n (n < size()).
  [[nodiscard]] T& operator[](std::uint32_t n) {
    const Place p = place(n);
    return chunks_[p.chunk][p.offset];
  }
  [[nodiscard]] const T& operator[](std::uint32_t n) const {
    const Place p = place(n);
    return chunks_[p.chunk][p.offset];
  }

 private:
  struct Place {
    std::size_t chunk;
    std::size_t offset;
  };
  static std::size_t chunk_size(std::size_t chunk) {
    return chunk < kGrowing ? std::size_t{kFirst} << chunk : kMax;
  }
  static Place place(std::uint64_t n) {
    if (n < kGrowingItems) {
      // Chunk k starts at kFirst * (2^k - 1).
      const std::size_t k = std::bit_width(n / kFirst + 1) - 1;
      return {k, static_cast<std::size_t>(n - std::uint64_t{kFirst} * ((1ULL << k) - 1))};
    }
    const std::uint64_t past = n - kGrowingItems;
    return {kGrowing + static_cast<std::size_t>(past / kMax),
            static_cast<std::size_t>(past % kMax)};
  }

  std::vector<std::unique_ptr<T[]>> chunks_;
  std::uint32_t size_ = 0;
};

template <std::uint32_t kFirst, std::uint32_t kMax>
class ByteArena final {
  static_assert(kFirst <= kMax, "chunks grow to kMax");

 public:
  // Copies `bytes` (at most kMax of them) and returns the copy's first byte.
  const char* append(std::string_view bytes) {
    VOUCHERD_CHECK(bytes.size() <= kMax, "a string fits one chunk");
    if (chunks_.empty() || kept_ + bytes.size() > capacity_) {
      capacity_ = chunks_.empty() ? kFirst : std::min<std::size_t>(capacity_ * 2, kMax);
      capacity_ = std::max(capacity_, bytes.size());
      chunks_.push_back(std::make_unique<char[]>(capacity_));
      kept_ = 0;
    }
    char* at = chunks_.back().get() + kept_;
    if (!bytes.empty()) std::memcpy(at, bytes.data(), bytes.size());
    kept_ += bytes.size();
    return at;
  }

 private:
  std::vector<std::unique_ptr<char[]>> chunks_;
  std::size_t capacity_ = 0;  // of the last chunk
  std::size_t kept_ = 0;      // bytes used in the last chunk
};

}  // namespace voucherd
