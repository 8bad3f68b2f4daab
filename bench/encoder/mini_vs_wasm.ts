/**
 * sam-mini's image encoder, ours against onnxruntime-web wasm on the same graph
 * (../shared/fixtures/sam-mini/encoder.onnx), in one process on the same cores: the ratio
 * that issue #15 sets a goal for on CPU adapters (within 2.5x of wasm).
 *
 *   deno run -A bench/encoder/mini_vs_wasm.ts [--runs N] [--ours-only|--wasm-only]
 *
 * Ours runs with the tune cache of $WGSAM_WEIGHTS_DIR (WGSAM_TUNE=off: the defaults). Each
 * side: one warm-up pass (pipeline compilation / session set-up), then N timed passes,
 * median printed; wasm's passes first, then ours (see below).
 */
import { getContext } from "../../src/gpu/context.ts";
import { createImageEncoder } from "../../src/encoder/encoder.ts";
import { loadTuneCache, tuneCachePath, tunedDispatches } from "../../src/kernels/tuning.ts";
import { loadSam } from "../../src/weights/load.ts";
import { weightsDirFrom } from "../../src/weights/registry.ts";
import { readNpy } from "../../src/util/npy.ts";

const dir = new URL("../../../shared/fixtures/sam-mini/", import.meta.url);
const args = Deno.args;
const runs = Number(args[args.indexOf("--runs") + 1] || 3) || 3;
const oursOnly = args.includes("--ours-only");
const wasmOnly = args.includes("--wasm-only");

const input = (await readNpy(new URL("input_tensor.npy", dir))).data as Float32Array;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const ctx = await getContext();
const entries = await loadTuneCache(ctx, tuneCachePath(weightsDirFrom()));
const { sd, arch } = await loadSam(new URL("sam-mini.pth", dir));
const encoder = createImageEncoder(ctx, sd, arch);

const ort = await import("onnxruntime-web");
ort.env.wasm.numThreads = navigator.hardwareConcurrency ?? 1;
const session = wasmOnly || !oursOnly
  ? await ort.InferenceSession.create(await Deno.readFile(new URL("encoder.onnx", dir)))
  : null;

async function ours(): Promise<number> {
  const t0 = performance.now();
  const out = encoder.encode(input);
  await ctx.read(out.buffer);
  const ms = performance.now() - t0;
  out.destroy();
  return ms;
}
async function wasm(): Promise<number> {
  const feeds = { image: new ort.Tensor("float32", input, [1, 3, arch.imgSize, arch.imgSize]) };
  const t0 = performance.now();
  await session!.run(feeds);
  return performance.now() - t0;
}

const o: number[] = [];
const w: number[] = [];
// wasm first, then ours: onnxruntime-web's threaded wasm crashed ("memory access out of
// bounds" in its pthread worker) when its runs came after our encoder's in one process.
if (session) {
  await wasm(); // warm-up
  for (let i = 0; i < runs; i++) w.push(await wasm());
}
if (!wasmOnly) {
  await ours(); // warm-up: pipeline compilation
  for (let i = 0; i < runs; i++) o.push(await ours());
}
console.log(
  `adapter: ${ctx.gpu.description}; tune cache entries: ${entries}, tuned dispatches ` +
    `${tunedDispatches(ctx)}; ${navigator.hardwareConcurrency} threads for wasm`,
);
if (o.length) {
  console.log(
    `ours  sam-mini encoder: median ${median(o).toFixed(0)} ms  [${o.map((x) => x.toFixed(0))}]`,
  );
}
if (w.length) {
  console.log(
    `wasm  sam-mini encoder: median ${median(w).toFixed(0)} ms  [${w.map((x) => x.toFixed(0))}]`,
  );
}
if (o.length && w.length) console.log(`ratio ours / wasm: ${(median(o) / median(w)).toFixed(2)}x`);
encoder.dispose();
