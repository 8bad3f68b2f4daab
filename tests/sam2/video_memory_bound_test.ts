/**
 * A live stream of 320 small frames tracked while they arrive (each frame added just before
 * the propagation asks for it): what the predictor keeps, and the GPU buffers alive, stop
 * growing once the history window is full. The same stream with historyFrames = Infinity keeps
 * every frame's output, so the check can fail.
 *
 * sam2-tiny's weights run at a 64-px input here (its hints with imgSize 64: the same modules
 * on 16x fewer tokens), so 320 frames take about a minute on lavapipe; what is kept does
 * not depend on the input size.
 */
import assert from "node:assert/strict";
import { getContext } from "../../src/gpu/context.ts";
import { SamVideoPredictor, type VideoFrameResult } from "../../src/sam2/video_predictor.ts";
import type { RgbImage } from "../../src/types.ts";
import { sam2HintsFromFixture } from "../../src/sam2/arch.ts";
import { loadSam2 } from "../../src/sam2/load.ts";
import { sam2File, sam2Files, sam2FixtureJson } from "./fixture_files.ts";

const ctx = await getContext();

/** sam2-tiny at a 64-px input. */
async function smallModel() {
  const fixture = await sam2FixtureJson("sam2-tiny");
  return await loadSam2(sam2File("sam2-tiny", "sam2-tiny.pt")!, {
    ...sam2HintsFromFixture(fixture.architecture),
    imgSize: 64,
  });
}
const have = sam2Files("sam2-tiny", ["sam2-tiny.pt", "fixture.json"], "video memory bound");

/** A 32x24 frame: a bright square drifting over a dark gradient. */
function frame(i: number): RgbImage {
  const w = 32, h = 24, data = new Uint8Array(w * h * 3);
  const x0 = 4 + (i % 16), y0 = 6 + ((i >> 3) % 6);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const inside = x >= x0 && x < x0 + 8 && y >= y0 && y < y0 + 8;
      const q = (y * w + x) * 3;
      data[q] = inside ? 230 : 20 + x * 2;
      data[q + 1] = inside ? 200 : 30 + y * 3;
      data[q + 2] = inside ? 40 : 60;
    }
  }
  return { width: w, height: h, channels: 3, data };
}

/** Live GPU buffers (bytes), counted at createBuffer / destroy. */
function trackGpuBuffers(): { live: () => number; restore: () => void } {
  const device = ctx.device;
  const orig = device.createBuffer;
  const alive = new Map<GPUBuffer, number>();
  device.createBuffer = function (desc: GPUBufferDescriptor): GPUBuffer {
    const b = orig.call(device, desc);
    alive.set(b, desc.size);
    const destroy = b.destroy.bind(b);
    b.destroy = () => (alive.delete(b), destroy());
    return b;
  };
  return {
    live: () => [...alive.values()].reduce((a, x) => a + x, 0),
    restore: () => void (device.createBuffer = orig),
  };
}

async function stream(
  predictor: SamVideoPredictor,
  frames: number,
  onFrame: (r: VideoFrameResult) => void,
): Promise<void> {
  predictor.addFrame(frame(0));
  const first = await predictor.addNewPointsOrBox({
    frameIdx: 0,
    objId: 1,
    points: [[8, 10]],
    labels: [1],
  });
  assert.deepEqual(first.objIds, [1]);
  const it = predictor.propagateInVideo();
  for (let i = 0; i < frames; i++) {
    if (i > 0) predictor.addFrame(frame(i)); // arrives while the propagation runs
    const r = await it.next();
    assert.ok(!r.done, `propagation ended before frame ${i}`);
    assert.equal(r.value.frameIdx, i);
    onFrame(r.value);
  }
  // Caught up with the newest frame: the propagation ends.
  assert.ok((await it.next()).done);
}

Deno.test({
  name:
    "sam2-tiny live stream of 320 frames: kept frames, outputs and live GPU bytes stop growing (historyFrames 16); with Infinity they grow",
  ignore: !have,
  async fn() {
    const { sd, arch } = await smallModel();
    const gpu = trackGpuBuffers();
    const predictor = SamVideoPredictor.fromStateDict(ctx, sd, arch, { historyFrames: 16 });
    const N = 320;
    const usage: ReturnType<SamVideoPredictor["memoryUsage"]>[] = [];
    const gpuBytes: number[] = [];
    try {
      await stream(predictor, N, (r) => {
        assert.equal(r.maskLogits[0].length, 32 * 24);
        usage.push(predictor.memoryUsage());
        gpuBytes.push(gpu.live());
      });
    } finally {
      predictor.dispose();
      gpu.restore();
    }
    const at = (i: number) => usage[i];
    console.log(
      `frame 40: ${JSON.stringify(at(40))}, gpu ${gpuBytes[40]}\n` +
        `frame ${N - 1}: ${JSON.stringify(at(N - 1))}, gpu ${gpuBytes[N - 1]}`,
    );
    // The window (16 frames back, >= the 15 the model reads) is full by frame 40: from there
    // on nothing the predictor keeps grows.
    for (let i = 40; i < N; i++) {
      assert.ok(at(i).framesKept <= 18, `frame ${i}: ${at(i).framesKept} frames kept`);
      assert.equal(at(i).outputsKept, at(40).outputsKept, `frame ${i}: outputs kept`);
      assert.equal(at(i).outputBytes, at(40).outputBytes, `frame ${i}: output bytes`);
      assert.equal(at(i).pixelBytes, at(40).pixelBytes, `frame ${i}: pixel bytes`);
      assert.equal(at(i).featureGpuBytes, at(40).featureGpuBytes);
    }
    // Live GPU buffers: the later 160 frames never exceed the peak of frames 40..159.
    const peak = (a: number, b: number) => Math.max(...gpuBytes.slice(a, b));
    assert.ok(
      peak(160, N) <= peak(40, 160),
      `GPU bytes grew: ${peak(40, 160)} over frames 40..159, ${peak(160, N)} after`,
    );
  },
});

Deno.test({
  name: "sam2-tiny stream with historyFrames = Infinity keeps every frame's output (it grows)",
  ignore: !have,
  async fn() {
    const { sd, arch } = await smallModel();
    const predictor = SamVideoPredictor.fromStateDict(ctx, sd, arch, { historyFrames: Infinity });
    const kept: number[] = [];
    try {
      await stream(predictor, 40, () => kept.push(predictor.memoryUsage().outputsKept));
    } finally {
      predictor.dispose();
    }
    assert.equal(kept[39], 40);
    assert.ok(kept[39] > kept[20]);
  },
});
