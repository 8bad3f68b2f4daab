/**
 * sam-mini's image encoder, ours against onnxruntime-web wasm on the same graph
 * (../shared/fixtures/sam-mini/encoder.onnx) and the same cores, in one run: the ratio that
 * issue #15 sets a goal for on CPU adapters (within 2.5x of wasm).
 *
 *   deno run -A bench/encoder/mini_vs_wasm.ts [--runs N] [--ours-only|--wasm-only]
 *
 * One run is wasm, ours, wasm, back to back: load on a shared machine drifts within minutes
 * and slows the two sides differently, so ours is compared with the wasm passes on either
 * side of it (the ratio to each and to their mean). wasm runs in a child process each time
 * (bench/peer/peer_cli.ts, with a time limit, retried): onnxruntime-web's threaded wasm
 * sometimes hangs at start, also in a child of its own. Each side: one warm-up pass (pipeline
 * compilation / session set-up), then N timed passes, median printed. Ours runs with the
 * tune cache of $WGSAM_WEIGHTS_DIR (WGSAM_TUNE=off: the defaults).
 */
import { getContext } from "../../src/gpu/context.ts";
import { createImageEncoder } from "../../src/encoder/encoder.ts";
import { loadTuneCache, tuneCachePath, tunedDispatches } from "../../src/kernels/tuning.ts";
import { loadSam } from "../../src/weights/load.ts";
import { weightsDirFrom } from "../../src/weights/registry.ts";
import { readNpy } from "../../src/util/npy.ts";
import { median } from "../peer/ort_peer.ts";
import { runPeerInChild } from "../peer/peer_cli.ts";

const dir = new URL("../../../shared/fixtures/sam-mini/", import.meta.url);
const args = Deno.args;
const runs = Number(args[args.indexOf("--runs") + 1] || 3) || 3;
const oursOnly = args.includes("--ours-only");
const wasmOnly = args.includes("--wasm-only");
/** A wasm session takes ~15 s here (create, warm-up, 3 passes); a hung one is retried. */
const WASM_LIMIT_MS = 180_000;
const WASM_ATTEMPTS = 3;

/** One wasm session in a child: its timed passes, or why there are none. */
async function wasmPasses(): Promise<number[] | string> {
  let r;
  for (let attempt = 1; attempt <= WASM_ATTEMPTS; attempt++) {
    [r] = await runPeerInChild({
      backend: "wasm",
      graph: { id: "sam-mini", kind: "encoder", path: new URL("encoder.onnx", dir).pathname },
      cases: [{ name: "encoder", warmup: 1, runs }],
    }, WASM_LIMIT_MS);
    if (r.status === "ok") break;
    console.log(`wasm attempt ${attempt}/${WASM_ATTEMPTS}: ${r.reason}`);
  }
  if (!r || r.status !== "ok") return r?.reason ?? "not run";
  console.log(
    `wasm  sam-mini encoder: ${r.threads} threads, median ${r.medianMs.toFixed(0)} ms  [${
      r.runsMs.map((x) => x.toFixed(0))
    }]`,
  );
  return r.runsMs;
}

async function oursPasses(): Promise<number[]> {
  const input = (await readNpy(new URL("input_tensor.npy", dir))).data as Float32Array;
  const ctx = await getContext();
  const entries = await loadTuneCache(ctx, tuneCachePath(weightsDirFrom()));
  const { sd, arch } = await loadSam(new URL("sam-mini.pth", dir));
  const encoder = createImageEncoder(ctx, sd, arch);
  const pass = async (): Promise<number> => {
    const t0 = performance.now();
    const out = encoder.encode(input);
    await ctx.read(out.buffer);
    const ms = performance.now() - t0;
    out.destroy();
    return ms;
  };
  await pass(); // warm-up: pipeline compilation
  const o: number[] = [];
  for (let i = 0; i < runs; i++) o.push(await pass());
  encoder.dispose();
  console.log(
    `ours  sam-mini encoder: median ${median(o).toFixed(0)} ms  [${o.map((x) => x.toFixed(0))}]` +
      ` (adapter: ${ctx.gpu.description}; tune cache entries: ${entries}, tuned dispatches ` +
      `${tunedDispatches(ctx)})`,
  );
  return o;
}

const load = () => Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
console.log(`${new Date().toISOString()} load ${load()}, ${navigator.hardwareConcurrency} CPUs`);
const before = oursOnly ? null : await wasmPasses();
const ours = wasmOnly ? null : await oursPasses();
const after = oursOnly || wasmOnly ? null : await wasmPasses();
console.log(`${new Date().toISOString()} load ${load()}`);
for (const [when, w] of [["before", before], ["after", after]] as const) {
  if (typeof w === "string") console.log(`wasm ${when}: not measured (${w})`);
}
if (ours) {
  const sides = ([["before", before], ["after", after]] as const)
    .flatMap(([when, w]) => Array.isArray(w) ? [{ when, ms: median(w) }] : []);
  if (sides.length) {
    const mean = sides.reduce((a, b) => a + b.ms, 0) / sides.length;
    const each = sides.map((w) => `${(median(ours) / w.ms).toFixed(2)}x ${w.when}`).join(", ");
    console.log(
      `ratio ours / wasm: ${(median(ours) / mean).toFixed(2)}x against the mean wasm median ` +
        `(${each})`,
    );
  }
}
