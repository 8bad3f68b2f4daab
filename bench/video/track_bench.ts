/**
 * SAM 2.1 video tracking through SamVideoPredictor:
 * - ms per tracked frame with 1, 4 and 16 objects (sam2-tiny fixture at its 256-px input:
 *   every stage of the real pipeline, a small Hiera; frames 160x107 from the fixture video),
 *   the median over the tracked frames after the prompted one, wall time including reads;
 * - memory over a long live stream (sam2-tiny's weights at a 64-px input so that hundreds of
 *   frames fit in a run): what the predictor keeps and the GPU bytes alive, every 25 frames.
 *
 *   deno run -A bench/video/track_bench.ts [--frames N] [--stream N] [--out bench/results]
 *
 * Writes <out>/video-tracking-<adapter>.json and .md. Skips when the fixture is absent.
 */
import { parseArgs } from "node:util";
import { getContext } from "../../src/gpu/context.ts";
import { readImageFile } from "../../src/image.ts";
import { sam2HintsFromFixture } from "../../src/sam2/arch.ts";
import { loadSam2 } from "../../src/sam2/load.ts";
import { SamVideoPredictor } from "../../src/sam2/video_predictor.ts";
import type { RgbImage } from "../../src/types.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    frames: { type: "string", default: "4" },
    stream: { type: "string", default: "300" },
    out: { type: "string", default: "bench/results" },
  },
});
const tracked = Number(values.frames), streamFrames = Number(values.stream);

function find(file: string): URL | null {
  for (const root of ["../../tests/fixtures/sam2-tiny/", "../../../shared/fixtures/sam2-tiny/"]) {
    const url = new URL(root + file, import.meta.url);
    try {
      Deno.statSync(url);
      return url;
    } catch { /* next */ }
  }
  return null;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const pt = find("sam2-tiny.pt"), fx = find("fixture.json");
if (!pt || !fx) {
  console.warn("SKIP track_bench: sam2-tiny fixture (sam2-tiny.pt, fixture.json) not found");
  Deno.exit(0);
}
const ctx = await getContext();
const fixture = JSON.parse(await Deno.readTextFile(fx));
const hints = sam2HintsFromFixture(fixture.architecture);
const loadAvg = () => Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
const startLoad = loadAvg();

// --- ms per tracked frame, 1 / 4 / 16 objects ---
const frames: RgbImage[] = [];
for (const f of fixture.video.frames) frames.push(await readImageFile(find(f)!));
const [H, W] = fixture.video.frame_size_hw;
const perObjects: { objects: number; msPerFrame: number; runsMs: number[] }[] = [];
{
  const { sd, arch } = await loadSam2(pt, hints);
  const predictor = SamVideoPredictor.fromStateDict(ctx, sd, arch);
  try {
    for (let i = 0; i <= tracked; i++) predictor.addFrame(frames[i % frames.length]);
    for (const n of [1, 4, 16]) {
      await predictor.reset();
      // Clicks on a grid over frame 0.
      for (let k = 0; k < n; k++) {
        const x = ((k % 4) + 0.5) * W / 4, y = (Math.floor(k / 4) % 4 + 0.5) * H / 4;
        await predictor.addNewPointsOrBox({
          frameIdx: 0,
          objId: k + 1,
          points: [[x, y]],
          labels: [1],
        });
      }
      const runsMs: number[] = [];
      let t = performance.now();
      for await (const r of predictor.propagateInVideo({ maxFrames: tracked })) {
        const now = performance.now();
        if (r.frameIdx > 0) runsMs.push(now - t); // frame 0 is the prompted one (stored)
        t = now;
      }
      const ms = median(runsMs);
      perObjects.push({ objects: n, msPerFrame: ms, runsMs });
      console.log(
        `${n} object(s): ${ms.toFixed(0)} ms per tracked frame (${
          runsMs.map((x) => x.toFixed(0)).join(", ")
        })`,
      );
    }
  } finally {
    predictor.dispose();
  }
}

// --- memory over a long live stream ---
const streamRows: {
  frame: number;
  framesKept: number;
  outputsKept: number;
  cpuBytes: number;
  gpuBytesAlive: number;
  msPerFrame: number;
}[] = [];
{
  const { sd, arch } = await loadSam2(pt, { ...hints, imgSize: 64 });
  const device = ctx.device, orig = device.createBuffer;
  const alive = new Map<GPUBuffer, number>();
  device.createBuffer = function (desc: GPUBufferDescriptor): GPUBuffer {
    const b = orig.call(device, desc);
    alive.set(b, desc.size);
    const destroy = b.destroy.bind(b);
    b.destroy = () => (alive.delete(b), destroy());
    return b;
  };
  const predictor = SamVideoPredictor.fromStateDict(ctx, sd, arch);
  try {
    predictor.addFrame(frames[0]);
    await predictor.addNewPointsOrBox({ frameIdx: 0, objId: 1, points: [[80, 50]], labels: [1] });
    const it = predictor.propagateInVideo();
    let t = performance.now(), window: number[] = [];
    for (let i = 0; i < streamFrames; i++) {
      if (i > 0) predictor.addFrame(frames[i % frames.length]);
      await it.next();
      const now = performance.now();
      window.push(now - t);
      t = now;
      if ((i + 1) % 25 === 0) {
        const u = predictor.memoryUsage();
        streamRows.push({
          frame: i,
          framesKept: u.framesKept,
          outputsKept: u.outputsKept,
          cpuBytes: u.pixelBytes + u.outputBytes,
          gpuBytesAlive: [...alive.values()].reduce((a, x) => a + x, 0),
          msPerFrame: median(window),
        });
        window = [];
        console.log(JSON.stringify(streamRows.at(-1)));
      }
    }
  } finally {
    predictor.dispose();
    device.createBuffer = orig;
  }
}

const report = {
  adapter: ctx.gpu.description,
  date: new Date().toISOString(),
  deno: Deno.version.deno,
  cpus: navigator.hardwareConcurrency,
  loadAverage: { start: startLoad, end: loadAvg() },
  model: "sam2-tiny fixture (Hiera 16-wide, d_model 32, 2 memory-attention layers), 256-px input",
  frameSize: [H, W],
  perObjects,
  stream: { model: "sam2-tiny weights at a 64-px input", frames: streamFrames, rows: streamRows },
};
const slug = ctx.gpu.description.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
await Deno.mkdir(values.out, { recursive: true });
await Deno.writeTextFile(
  `${values.out}/video-tracking-${slug}.json`,
  JSON.stringify(report, null, 2) + "\n",
);
const md = [
  `# SAM 2.1 video tracking on ${report.adapter}`,
  "",
  `${report.date}, Deno ${report.deno}, ${report.cpus} CPUs, load average ${startLoad} at the start, ` +
  `${report.loadAverage.end} at the end. **The machine was shared** (other jobs running): the ` +
  "times are upper bounds of what it does alone.",
  "",
  `## ms per tracked frame (${report.model}, frames ${W}x${H})`,
  "",
  "Median wall time of a propagateInVideo step after the prompted frame (image encoder once, then per object: memory attention, SAM heads, memory encoder, reads).",
  "",
  "| objects | ms / frame | ms / object | runs (ms) |",
  "|---:|---:|---:|---|",
  ...perObjects.map((r) =>
    `| ${r.objects} | ${r.msPerFrame.toFixed(0)} | ${(r.msPerFrame / r.objects).toFixed(0)} | ${
      r.runsMs.map((x) => x.toFixed(0)).join(", ")
    } |`
  ),
  "",
  `## Memory over a live stream (${report.stream.model}, ${streamFrames} frames, 1 object, historyFrames 16)`,
  "",
  "Each frame added just before propagateInVideo asks for it. cpu bytes: kept pixels + outputs (memories as bfloat16, pointers, low-res masks); gpu bytes: every GPU buffer alive (weights, pools, the cached frame's features).",
  "",
  "| frame | frames kept | outputs kept | cpu bytes | gpu bytes alive | ms / frame (median of 25) |",
  "|---:|---:|---:|---:|---:|---:|",
  ...streamRows.map((r) =>
    `| ${r.frame} | ${r.framesKept} | ${r.outputsKept} | ${r.cpuBytes} | ${r.gpuBytesAlive} | ${
      r.msPerFrame.toFixed(0)
    } |`
  ),
  "",
];
await Deno.writeTextFile(`${values.out}/video-tracking-${slug}.md`, md.join("\n"));
console.log(`wrote ${values.out}/video-tracking-${slug}.{json,md}`);
