// Thread count, fork safety and the flush-denormals switch for parallel_for. After fork() only
// the calling thread exists in the child, and GNU OpenMP's thread pool would hang waiting for
// its lost workers, so a forked child runs every op serially.
#include "core/parallel.h"

#include <pthread.h>

#include <atomic>
#include <cstdlib>

namespace cnnfast {
namespace {

std::atomic<int> g_num_threads{0};  // 0: not yet initialised
std::atomic<bool> g_forked{false};

void mark_forked_child() { g_forked.store(true); }

int initial_threads() {
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, mark_forked_child);
    return true;
  }();
  (void)registered;
  // omp_get_max_threads honours OMP_NUM_THREADS and defaults to the cores we may run on.
  const int n = omp_get_max_threads();
  return n > 0 ? n : 1;
}

}  // namespace

int get_num_threads() {
  int n = g_num_threads.load();
  if (n == 0) {
    n = initial_threads();
    int expected = 0;
    if (!g_num_threads.compare_exchange_strong(expected, n)) n = expected;
  }
  return n;
}

void set_num_threads(int n) {
  initial_threads();  // registers the fork handler
  g_num_threads.store(n < 1 ? 1 : n);
}

bool flush_denormals_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("CNNFAST_FLUSH_DENORMALS");
    return !(v && v[0] == '0' && v[1] == '\0');
  }();
  return enabled;
}

int threads_for(int64_t num_tasks) {
  if (g_forked.load(std::memory_order_relaxed) || omp_in_parallel()) return 1;
  const int64_t n = get_num_threads();
  return int(num_tasks < n ? (num_tasks < 1 ? 1 : num_tasks) : n);
}

}  // namespace cnnfast
