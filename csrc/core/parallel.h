// The only place cnnfast uses OpenMP. An op opens one parallel region per call with
// parallel_for over its output tiles; the reduction dimension is never split, so results do not
// depend on the thread count.
#pragma once

#include <cstdint>

namespace cnnfast {

// cnnfast's own thread count: OMP_NUM_THREADS or the core count until set_num_threads changes it.
int get_num_threads();
void set_num_threads(int n);  // n >= 1, checked by the caller

// Runs fn(task, thread) for task in [0, num_tasks) on min(num_tasks, threads) threads, where
// thread in [0, threads used). Serial when called from inside a parallel region, in a forked
// child (GNU OpenMP's pool does not survive fork), or when threads == 1. An exception thrown by
// fn (e.g. std::bad_alloc from a task's buffer) stops the remaining tasks and is rethrown to the
// caller after the region: escaping an OpenMP region would call std::terminate. Tasks run with
// subnormals flushed to zero (core/denormals.h); the caller's mode is restored on return.
template <class Fn>
void parallel_for(int64_t num_tasks, Fn&& fn);

// How many threads parallel_for(num_tasks, ...) would use right now.
int threads_for(int64_t num_tasks);

// Below this many elements read and written in all, a memory-bound op runs its tasks serially:
// a fork/join costs a few microseconds on an idle machine, as much as 32K elements take, and on
// a loaded machine a descheduled worker holds the join for a time slice (cnnfast.nn's demo: a
// max pooling of 16 8x8 planes took 12 ms at 2 threads against 18 us at 1, load average 5).
constexpr int64_t kMinParallelElements = int64_t(1) << 15;

// parallel_for for an op that touches `elements` elements in all: serial below
// kMinParallelElements.
template <class Fn>
void parallel_for_elements(int64_t num_tasks, int64_t elements, Fn&& fn);

}  // namespace cnnfast

#include <omp.h>

#include <atomic>
#include <exception>

#include "core/denormals.h"

namespace cnnfast {

template <class Fn>
void parallel_for(int64_t num_tasks, Fn&& fn) {
  const int threads = threads_for(num_tasks);
  if (threads <= 1) {
    const ScopedFlushDenormals flush;
    for (int64_t t = 0; t < num_tasks; ++t) fn(t, 0);
    return;
  }
  std::exception_ptr error;
  std::atomic<bool> failed{false};
#pragma omp parallel num_threads(threads)
  {
    const int thread = omp_get_thread_num();
    const ScopedFlushDenormals flush;
    try {
      // Static round-robin: the same task always runs the same code path whichever thread
      // takes it.
      for (int64_t t = thread; t < num_tasks && !failed.load(std::memory_order_relaxed);
           t += threads) {
        fn(t, thread);
      }
    } catch (...) {
#pragma omp critical(cnnfast_parallel_for_error)
      if (!error) error = std::current_exception();
      failed.store(true, std::memory_order_relaxed);
    }
  }
  if (error) std::rethrow_exception(error);
}

template <class Fn>
void parallel_for_elements(int64_t num_tasks, int64_t elements, Fn&& fn) {
  if (elements < kMinParallelElements) {
    const ScopedFlushDenormals flush;
    for (int64_t t = 0; t < num_tasks; ++t) fn(t, 0);
    return;
  }
  parallel_for(num_tasks, fn);
}

}  // namespace cnnfast
