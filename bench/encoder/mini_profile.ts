/**
 * sam-mini's image encoder on this adapter, by dispatch: records one pass while capturing
 * every ctx.dispatch, then replays each dispatch alone (submit + wait) a few times and sums
 * the median wall ms per kernel name. On lavapipe (no timestamps worth trusting per pass)
 * this is the per-kernel cost; the sum is near one pass's time.
 *
 *   deno run -A bench/encoder/mini_profile.ts [--reps N]
 */
import { getContext, type KernelSpec } from "../../src/gpu/context.ts";
import { createImageEncoder } from "../../src/encoder/encoder.ts";
import { loadSam } from "../../src/weights/load.ts";
import { readNpy } from "../../src/util/npy.ts";

const dir = new URL("../../../shared/fixtures/sam-mini/", import.meta.url);
const args = Deno.args;
const reps = Number(args[args.indexOf("--reps") + 1] || 1) || 1;

const input = (await readNpy(new URL("input_tensor.npy", dir))).data as Float32Array;
const ctx = await getContext();
const { sd, arch } = await loadSam(new URL("sam-mini.pth", dir));
const encoder = createImageEncoder(ctx, sd, arch);

type Call = Parameters<typeof ctx.dispatch>;
const calls: Call[] = [];
const original = ctx.dispatch.bind(ctx);
// Warm-up pass (pipeline compilation), capturing the dispatches of one pass.
ctx.dispatch = (...a: Call) => {
  calls.push([a[0], a[1] ? a[1].slice(0) : null, a[2], a[3]]);
  original(...a);
};
const t0 = performance.now();
const out = encoder.encode(input);
await ctx.read(out.buffer);
console.log(`warm-up pass (with compilation): ${(performance.now() - t0).toFixed(0)} ms`);
ctx.dispatch = original;
const t1 = performance.now();
const out2 = encoder.encode(input);
await ctx.read(out2.buffer);
const whole = performance.now() - t1;

const byName = new Map<string, { ms: number; n: number; grid: string }>();
for (const [spec, params, buffers, grid] of calls) {
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    await ctx.sync();
    const t = performance.now();
    original(spec as KernelSpec, params, buffers, grid);
    await ctx.sync();
    times.push(performance.now() - t);
  }
  const ms = times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
  const e = byName.get(spec.name) ?? { ms: 0, n: 0, grid: "" };
  e.ms += ms;
  e.n++;
  e.grid = grid.join("x");
  byName.set(spec.name, e);
}
out.destroy();
out2.destroy();
const total = [...byName.values()].reduce((s, e) => s + e.ms, 0);
console.log(`one pass: ${whole.toFixed(0)} ms; sum of replayed dispatches ${total.toFixed(0)} ms`);
console.log("| kernel | dispatches | total ms | share | last grid |\n|---|---|---|---|---|");
for (const [name, e] of [...byName].sort((a, b) => b[1].ms - a[1].ms)) {
  console.log(
    `| ${name} | ${e.n} | ${e.ms.toFixed(0)} | ${(100 * e.ms / total).toFixed(1)}% | ${e.grid} |`,
  );
}
