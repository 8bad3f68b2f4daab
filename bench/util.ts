/**
 * Kernel benchmark helper: runs the work through Deno.bench (wall time around a GPU sync)
 * and prints GPU time from timestamp queries with GFLOP/s or GB/s where the adapter has them.
 */
import type { GpuContext } from "../src/gpu/context.ts";

export interface KernelBench {
  name: string;
  ctx: GpuContext;
  /** Floating-point operations per run, for GFLOP/s. */
  flops?: number;
  /** Bytes moved per run, for GB/s. */
  bytes?: number;
  run: () => void;
  /** Deno.bench group. */
  group?: string;
  /** Deno.bench iterations and warmup runs; set both low for cases that take seconds. */
  n?: number;
  warmup?: number;
}

export function benchKernel(b: KernelBench): void {
  Deno.bench({
    name: b.name,
    group: b.group,
    n: b.n,
    warmup: b.warmup,
    async fn(t) {
      t.start();
      b.run();
      await b.ctx.sync();
      t.end();
    },
  });
  // One extra timed run per suite, reported with throughput.
  Deno.bench({
    name: `${b.name} [gpu time + throughput]`,
    group: b.group,
    n: 1,
    warmup: 0,
    async fn() {
      b.run();
      await b.ctx.sync();
      const t0 = performance.now();
      const gpuMs = await b.ctx.timeGpu(() => b.run());
      const wallMs = performance.now() - t0;
      const ms = gpuMs ?? wallMs;
      const parts = [`${b.name}: ${ms.toFixed(3)} ms (${gpuMs === null ? "wall" : "gpu"})`];
      if (b.flops) parts.push(`${(b.flops / ms / 1e6).toFixed(2)} GFLOP/s`);
      if (b.bytes) parts.push(`${(b.bytes / ms / 1e6).toFixed(2)} GB/s`);
      console.log(parts.join(", "));
    },
  });
}
