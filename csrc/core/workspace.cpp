// Aligned allocation and the per-thread workspace cache behind thread_workspace().
#include "core/workspace.h"

#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>

#include "core/errors.h"

namespace cnnfast {
namespace {

constexpr size_t kAlign = 64;

void* aligned_malloc(size_t bytes) {
  if (bytes == 0) bytes = kAlign;
  void* p = nullptr;
  if (posix_memalign(&p, kAlign, (bytes + kAlign - 1) / kAlign * kAlign) != 0)
    throw std::bad_alloc();
  return p;
}

struct ThreadWorkspace {
  AlignedBuffer slots[kWorkspaceSlots];
};

}  // namespace

AlignedBuffer::AlignedBuffer(size_t bytes) : data_(aligned_malloc(bytes)), size_(bytes) {}
AlignedBuffer::~AlignedBuffer() { std::free(data_); }
AlignedBuffer::AlignedBuffer(AlignedBuffer&& other) noexcept
    : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}
AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& other) noexcept {
  if (this != &other) {
    std::free(data_);
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

void* thread_workspace(int slot, size_t bytes) {
  thread_local ThreadWorkspace ws;
  AlignedBuffer& buf = ws.slots[slot];
  if (buf.size() < bytes || buf.data() == nullptr) buf = AlignedBuffer(bytes);
  return buf.data();
}

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) {
    // A ValueError, as NumPy's "array is too big": the arguments ask for a result no memory
    // can hold (Python's OverflowError is for arithmetic results, and callers catch only
    // TypeError / ValueError / MemoryError).
    throw ValueError(std::string(what) + ": size " + std::to_string(a) + " x " + std::to_string(b) +
                     " overflows a 64-bit element count");
  }
  return r;
}

}  // namespace cnnfast
