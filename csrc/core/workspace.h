// Scratch memory for packed panels: 64-byte aligned, owned per thread and kept between calls so
// that small ops do not pay for malloc/mmap and page faults on every call. Sizes are checked for
// overflow before anything is allocated.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cnnfast {

// Returns a 64-byte-aligned buffer of at least `bytes` bytes belonging to the calling thread.
// `slot` distinguishes buffers that are live at the same time (e.g. packed A and packed B).
// The pointer stays valid until the same thread asks for the same slot again.
void* thread_workspace(int slot, size_t bytes);
constexpr int kWorkspaceSlots = 11;

// An owned 64-byte-aligned buffer, for data that outlives one call (e.g. packed weights).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes);
  ~AlignedBuffer();
  AlignedBuffer(AlignedBuffer&& other) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  void* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// a * b, throwing ValueError (Python's ValueError) naming `what` when it overflows.
int64_t checked_mul(int64_t a, int64_t b, const char* what);

}  // namespace cnnfast
