// chunked.h — append-only storage whose items never move.
//
// Chunked<T, kFirst, kMax> keeps items in chunks that are allocated as they
// are needed: the first holds kFirst items, each next one twice as many, up
// to kMax per chunk. Pointers and references to items stay valid for the
// container's life (nothing is moved or freed before it), and an item is
// also reached by its number (the order of appending). A container that
// holds nothing costs a vector; one with a few items costs a small chunk.
//
// ByteArena keeps byte strings the same way, each in a block of a multiple
// of 16 bytes: append() copies the bytes into a block given back earlier of
// the same size class, or else into the current chunk (a new one when they
// do not fit), and returns where they now live; give_back() makes a string's
// block reusable. What the arena holds is thus bounded by the strings kept
// at once, times at most the number of size classes.
//
// Usage:
//   Chunked<Record, 16, 4096> records;
//   Record& r = records.push_back(Record{...});   // number records.size() - 1
//   Record& same = records[n];
//   ByteArena<256, 16384> bytes;
//   char* kept = bytes.append(id);  ...  bytes.give_back(kept, id.size());
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
  static constexpr std::size_t kBlock = 16;
  static_assert(kFirst <= kMax && kMax % kBlock == 0, "chunks grow to kMax, whole blocks");

 public:
  // The most bytes one string may have.
  static constexpr std::size_t kStringMax = kMax;

  // Copies `bytes` (at most kStringMax of them) and returns the copy's
  // first byte.
  char* append(std::string_view bytes) {
    VOUCHERD_CHECK(bytes.size() <= kStringMax, "a string fits one chunk");
    const std::size_t cls = size_class(bytes.size());
    char* at = nullptr;
    if (cls < free_.size() && !free_[cls].empty()) {
      at = free_[cls].back();
      free_[cls].pop_back();
    } else {
      const std::size_t block = cls * kBlock;
      if (chunks_.empty() || kept_ + block > capacity_) {
        capacity_ = chunks_.empty() ? kFirst : std::min<std::size_t>(capacity_ * 2, kMax);
        capacity_ = std::max(capacity_, block);
        chunks_.push_back(std::make_unique<char[]>(capacity_));
        kept_ = 0;
      }
      at = chunks_.back().get() + kept_;
      kept_ += block;
    }
    if (!bytes.empty()) std::memcpy(at, bytes.data(), bytes.size());
    return at;
  }

  // `at`, which append() returned for a string of `size` bytes, may be
  // reused; the string is gone.
  void give_back(char* at, std::size_t size) {
    const std::size_t cls = size_class(size);
    if (free_.size() <= cls) free_.resize(cls + 1);
    free_[cls].push_back(at);
  }

 private:
  static std::size_t size_class(std::size_t size) {
    return std::max<std::size_t>(1, (size + kBlock - 1) / kBlock);
  }

  std::vector<std::unique_ptr<char[]>> chunks_;
  std::size_t capacity_ = 0;              // of the last chunk
  std::size_t kept_ = 0;                  // bytes used in the last chunk
  std::vector<std::vector<char*>> free_;  // blocks given back, by size class
};

}  // namespace voucherd
