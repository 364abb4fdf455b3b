// SGEMM benchmarks (google-benchmark). For every GEMM kernel in the registry that this CPU runs:
//   ukernel/<kernel>/kc:<kc>  the micro-kernel alone on L1-resident packed panels (its own peak)
//   sgemm/<kernel>/m:n:k      the full driver ops::sgemm over the sizes in shapes/gemm.txt
// Each reports FLOP/s and %peak. Environment: CNNFAST_PEAK_GFLOPS (per-thread FP32 peak, default
// 115 = Zen 4, see DESIGN.md section 6), CNNFAST_BENCH_THREADS (default 1),
// CNNFAST_BENCH_SHAPES_DIR (default: bench/shapes in the source tree).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/isa.h"
#include "core/parallel.h"
#include "core/workspace.h"
#include "kernels/registry.h"
#include "ops/gemm.h"

namespace {

using cnnfast::kernels::GemmKernel;

struct Config {
  double peak_gflops = 115.0;  // per thread
  int threads = 1;
};
Config g_config;

struct Shape {
  int64_t m, n, k;
};

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "cnnfast_bench: %s\n", message.c_str());
  std::exit(2);
}

// A positive number from the environment, or `fallback` when the variable is unset or empty.
double env_positive(const char* name, double fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (*end != '\0' || !(value > 0))
    die(std::string(name) + "=" + text + " is not a positive number");
  return value;
}

// Reads `m=.. n=.. k=..` lines (design section 9: one product per line, key=value, '#' comments).
std::vector<Shape> read_shapes(const std::string& path) {
  std::ifstream file(path);
  if (!file) die("cannot read " + path + " (set CNNFAST_BENCH_SHAPES_DIR)");
  std::vector<Shape> shapes;
  std::string line;
  for (int line_no = 1; std::getline(file, line); ++line_no) {
    std::istringstream tokens(line.substr(0, line.find('#')));
    Shape s{0, 0, 0};
    std::string token;
    bool any = false;
    while (tokens >> token) {
      any = true;
      const size_t eq = token.find('=');
      const std::string key = token.substr(0, eq);
      char* end = nullptr;
      const int64_t value =
          eq == std::string::npos ? 0 : std::strtoll(token.c_str() + eq + 1, &end, 10);
      int64_t* field = key == "m" ? &s.m : key == "n" ? &s.n : key == "k" ? &s.k : nullptr;
      if (field == nullptr || value <= 0 || *end != '\0')
        die(path + ":" + std::to_string(line_no) + ": bad '" + token + "'");
      *field = value;
    }
    if (!any) continue;
    if (s.m == 0 || s.n == 0 || s.k == 0)
      die(path + ":" + std::to_string(line_no) + ": needs m, n and k");
    shapes.push_back(s);
  }
  return shapes;
}

// Sets FLOP/s (a rate over the benchmark's real time) and %peak of `threads` threads. %peak is
// computed from our own clock around the timed loop, because a kIsRate counter would print as
// "85/s"; both clocks cover the same loop, so the two counters agree.
void report(benchmark::State& state, double flops_per_iter, int threads, double seconds) {
  const double flops = flops_per_iter * double(state.iterations());
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsRate);
  state.counters["%peak"] = 100.0 * flops / seconds / (g_config.peak_gflops * 1e9 * threads);
}

// The B micro-panel alternates +1/-1 along k, so each call adds (about) 0 to C: however many calls
// accumulate, C can neither overflow nor turn denormal (denormals would slow the FMAs down).
void bench_ukernel(benchmark::State& state, const GemmKernel& kern) {
  const int64_t kc = kern.kc;
  cnnfast::AlignedBuffer a_buf(sizeof(float) * kern.mr * kc), b_buf(sizeof(float) * kern.nr * kc),
      c_buf(sizeof(float) * kern.mr * kern.nr);
  float* a = static_cast<float*>(a_buf.data());
  float* b = static_cast<float*>(b_buf.data());
  float* c = static_cast<float*>(c_buf.data());
  for (int64_t i = 0; i < kern.mr * kc; ++i) a[i] = 0.5f;
  for (int64_t i = 0; i < kern.nr * kc; ++i) b[i] = (i / kern.nr) % 2 ? -1.0f : 1.0f;
  for (int i = 0; i < kern.mr * kern.nr; ++i) c[i] = 0.0f;

  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    kern.ukernel(kc, a, 0, b, 0, c, kern.nr, kern.mr, kern.nr, true, nullptr);
    benchmark::DoNotOptimize(c);
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  report(state, 2.0 * kern.mr * kern.nr * kc, 1, elapsed.count());
}

// Row-major A (m x k), B (k x n), C (m x n) with values in [-1, 1): the layout of cnnfast.matmul
// on C-contiguous arrays.
struct Operands {
  std::vector<float> a, b, c;
  explicit Operands(Shape s) : a(size_t(s.m * s.k)), b(size_t(s.k * s.n)), c(size_t(s.m * s.n)) {
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (float& x : a) x = dist(rng);
    for (float& x : b) x = dist(rng);
  }
};

// Times product() (one m x n x k product into c) and reports its FLOP/s.
template <class Product>
void time_products(benchmark::State& state, Shape s, float* c, Product&& product) {
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    product();
    benchmark::DoNotOptimize(c);
    benchmark::ClobberMemory();
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  report(state, 2.0 * double(s.m) * double(s.n) * double(s.k), g_config.threads, elapsed.count());
}

void bench_sgemm(benchmark::State& state, const GemmKernel& kern, Shape s) {
  Operands op(s);
  const cnnfast::ops::MatrixRef a_ref{op.a.data(), s.k, 1}, b_ref{op.b.data(), s.n, 1};
  time_products(state, s, op.c.data(), [&] {
    cnnfast::ops::sgemm(s.m, s.n, s.k, a_ref, b_ref, op.c.data(), s.n, cnnfast::ops::kNoEpilogue,
                        &kern);
  });
}

// The same product with A and B packed ahead (ops::prepack_operand), outside the timed loop: the
// driver's blocking and micro-kernel loop alone. The gap to sgemm/ is the packing's share; the
// gap to ukernel/ is what streaming B and C through the caches costs.
void bench_sgemm_prepacked(benchmark::State& state, const GemmKernel& kern, Shape s) {
  namespace ops = cnnfast::ops;
  Operands op(s);
  cnnfast::AlignedBuffer a_buf(sizeof(float) * ops::prepacked_floats(s.m, s.k, kern.mr)),
      b_buf(sizeof(float) * ops::prepacked_floats(s.n, s.k, kern.nr));
  float* a_packed = static_cast<float*>(a_buf.data());
  float* b_packed = static_cast<float*>(b_buf.data());
  ops::prepack_operand({op.a.data(), s.k, 1}, s.m, s.k, kern.mr, kern, a_packed);
  ops::prepack_operand({op.b.data(), 1, s.n}, s.n, s.k, kern.nr, kern, b_packed);  // B^T's rows
  const ops::PrepackedOperand a_op{a_packed, (s.m + kern.mr - 1) / kern.mr * kern.mr},
      b_op{b_packed, (s.n + kern.nr - 1) / kern.nr * kern.nr};
  time_products(state, s, op.c.data(), [&] {
    ops::sgemm(s.m, s.n, s.k, a_op, b_op, op.c.data(), s.n, ops::kNoEpilogue, kern);
  });
}

void register_benchmarks(const std::vector<Shape>& shapes) {
  int count = 0;
  const GemmKernel* table = cnnfast::kernels::gemm_kernels(&count);
  // Not "threads:": google-benchmark uses that for its own threads.
  const std::string threads = "/omp_threads:" + std::to_string(g_config.threads);
  for (int i = 0; i < count; ++i) {
    const GemmKernel& kern = table[i];
    if (int(kern.isa) > int(cnnfast::detected_isa())) continue;
    // Real time: with OpenMP the main thread's CPU time says nothing about throughput.
    benchmark::RegisterBenchmark(
        ("ukernel/" + std::string(kern.name) + "/kc:" + std::to_string(kern.kc)).c_str(),
        bench_ukernel, kern)
        ->UseRealTime();
    for (const Shape& s : shapes) {
      const std::string name = "sgemm/" + std::string(kern.name) + "/" + std::to_string(s.m) + ":" +
                               std::to_string(s.n) + ":" + std::to_string(s.k) + threads;
      benchmark::RegisterBenchmark(name.c_str(), bench_sgemm, kern, s)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(("sgemm_prepacked" + name.substr(5)).c_str(),
                                   bench_sgemm_prepacked, kern, s)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  g_config.peak_gflops = env_positive("CNNFAST_PEAK_GFLOPS", g_config.peak_gflops);
  const double threads = env_positive("CNNFAST_BENCH_THREADS", g_config.threads);
  if (threads != int(threads)) die("CNNFAST_BENCH_THREADS must be a whole number");
  g_config.threads = int(threads);
  cnnfast::set_num_threads(g_config.threads);
  const char* dir = std::getenv("CNNFAST_BENCH_SHAPES_DIR");
  const std::string shapes_dir = dir != nullptr && *dir != '\0' ? dir : CNNFAST_BENCH_SHAPES_DIR;

  // Printed in the run's header, so every result says which peak its %peak column used.
  benchmark::AddCustomContext("cnnfast_isa", cnnfast::isa_name(cnnfast::detected_isa()));
  benchmark::AddCustomContext("cnnfast_threads", std::to_string(g_config.threads));
  char peak[96];
  std::snprintf(peak, sizeof(peak), "%g (CNNFAST_PEAK_GFLOPS; sgemm %%peak uses peak x threads)",
                g_config.peak_gflops);
  benchmark::AddCustomContext("cnnfast_peak_gflops_per_thread", peak);

  register_benchmarks(read_shapes(shapes_dir + "/gemm.txt"));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
