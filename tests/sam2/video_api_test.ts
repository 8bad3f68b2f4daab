/**
 * SamVideoPredictor's API beyond the golden replay (video_replay_test.ts): clear errors for
 * bad input, removeObject and reset, objects tracked independently (per object, as the
 * official), frames added during a propagation, maxFrames. sam2-tiny's weights at a 64-px
 * input keep it fast (what is checked does not depend on the input size).
 */
import assert from "node:assert/strict";
import { getContext } from "../../src/gpu/context.ts";
import { SamModel } from "../../src/predictor.ts";
import { sam2HintsFromFixture } from "../../src/sam2/arch.ts";
import { loadSam2 } from "../../src/sam2/load.ts";
import { SamVideoPredictor, type VideoFrameResult } from "../../src/sam2/video_predictor.ts";
import type { RgbImage } from "../../src/types.ts";
import { sam2File, sam2Files, sam2FixtureJson } from "./fixture_files.ts";

const ctx = await getContext();
const have = sam2Files("sam2-tiny", ["sam2-tiny.pt", "fixture.json"], "video API");

async function small(opts: { historyFrames?: number } = {}): Promise<SamVideoPredictor> {
  const fixture = await sam2FixtureJson("sam2-tiny");
  const { sd, arch } = await loadSam2(sam2File("sam2-tiny", "sam2-tiny.pt")!, {
    ...sam2HintsFromFixture(fixture.architecture),
    imgSize: 64,
  });
  return SamVideoPredictor.fromStateDict(ctx, sd, arch, opts);
}

function frame(i: number, w = 40, h = 30): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let q = 0; q < data.length; q++) data[q] = (q * 7 + i * 29) % 251;
  return { width: w, height: h, channels: 3, data };
}

async function collect(it: AsyncIterable<VideoFrameResult>): Promise<VideoFrameResult[]> {
  const out: VideoFrameResult[] = [];
  for await (const r of it) out.push(r);
  return out;
}

Deno.test({
  name:
    "SamVideoPredictor: clear errors for a SAM 1 model, unknown frames, bad prompts, no objects, unknown objects, dropped frames",
  ignore: !have,
  sanitizeResources: false,
  async fn() {
    const sam1 = await SamModel.load("sam-tiny", { quiet: true });
    try {
      assert.throws(() => new SamVideoPredictor(sam1), /needs a SAM 2\.1 model; 'sam-tiny'/);
    } finally {
      sam1.dispose();
    }
    const p = await small({ historyFrames: 2 });
    try {
      await assert.rejects(() => p.propagateInVideo().next(), /no object has prompts/);
      await assert.rejects(
        () => p.addNewPointsOrBox({ frameIdx: 0, objId: 1, points: [[1, 1]], labels: [1] }),
        /frameIdx 0 is not a frame \(no frames added yet\)/,
      );
      for (let i = 0; i < 6; i++) assert.equal(p.addFrame(frame(i)), i);
      assert.throws(() => p.addFrame(frame(6, 20, 20)), /frame is 20x20, the video is 40x30/);
      const bad: [unknown, RegExp][] = [
        [
          { frameIdx: 9, objId: 1, points: [[1, 1]], labels: [1] },
          /frameIdx 9 is not a frame \(0\.\.5\)/,
        ],
        [{ frameIdx: 5, objId: 1.5, points: [[1, 1]], labels: [1] }, /objId 1.5/],
        [{ frameIdx: 5, objId: 1, points: [[1, 1]] }, /points and labels must be given together/],
        [{ frameIdx: 5, objId: 1, points: [[1, 1]], labels: [1, 0] }, /1 points but 2 labels/],
        [{ frameIdx: 5, objId: 1, points: [[1, NaN]], labels: [1] }, /point 0 is not a finite/],
        [{ frameIdx: 5, objId: 1, points: [[1, 1]], labels: [2] }, /label 0 is 2/],
        [{ frameIdx: 5, objId: 1, box: [1, 2, 3] }, /box must be \[x0, y0, x1, y1\]/],
        [{ frameIdx: 5, objId: 1 }, /at least one point or a box/],
      ];
      for (const [prompt, re] of bad) {
        await assert.rejects(() => p.addNewPointsOrBox(prompt as never), re);
      }
      // historyFrames 2: frame 0 is more than 2 behind the newest (5): its pixels are gone.
      await assert.rejects(
        () => p.addNewPointsOrBox({ frameIdx: 0, objId: 1, points: [[5, 5]], labels: [1] }),
        /frame 0 was dropped .*historyFrames/,
      );
      assert.equal(p.memoryUsage().framesKept, 3);
      // A prompted frame keeps its pixels until a propagation has encoded its memory.
      await p.addNewPointsOrBox({ frameIdx: 5, objId: 1, points: [[5, 5]], labels: [1] });
      for (let i = 6; i < 10; i++) p.addFrame(frame(i));
      // Frames 5-9: the prompted one and those waiting for forward tracking. The failed prompt
      // on frame 0 left no object behind.
      assert.equal(p.memoryUsage().framesKept, 5);
      assert.deepEqual(p.objIds, [1]);
      const tracked = await collect(p.propagateInVideo());
      assert.deepEqual(tracked.map((r) => r.frameIdx), [5, 6, 7, 8, 9]);
      assert.equal(p.memoryUsage().framesKept, 3); // tracked: back to the window (7-9)
      await assert.rejects(() => p.removeObject(7), /no object 7/);
      await assert.rejects(
        () => p.propagateInVideo({ startFrameIdx: 12 }).next(),
        /frameIdx 12 is not a frame \(0\.\.9\)/,
      );
    } finally {
      p.dispose();
    }
  },
});

Deno.test({
  name:
    "SamVideoPredictor: objects are tracked independently; removeObject and reset; maxFrames; frames added while propagating are tracked",
  ignore: !have,
  sanitizeResources: false,
  async fn() {
    const p = await small();
    try {
      for (let i = 0; i < 4; i++) p.addFrame(frame(i));
      const one = { frameIdx: 0, objId: 2, points: [[30, 12]] as [number, number][], labels: [1] };
      // Object 2 alone.
      await p.addNewPointsOrBox(one);
      const alone = await collect(p.propagateInVideo());
      assert.deepEqual(alone.map((r) => r.frameIdx), [0, 1, 2, 3]);
      assert.deepEqual(alone[1].objIds, [2]);
      // Objects 1 and 2: object 2's masks are the same bits (per-object tracking).
      await p.reset();
      await p.addNewPointsOrBox({ frameIdx: 0, objId: 1, box: [2, 2, 20, 25] });
      const both0 = await p.addNewPointsOrBox(one);
      assert.deepEqual(both0.objIds, [1, 2]);
      const both = await collect(p.propagateInVideo({ maxFrames: 2 }));
      assert.deepEqual(both.map((r) => r.frameIdx), [0, 1, 2], "maxFrames 2: start + 2 frames");
      for (const r of both) {
        assert.deepEqual(r.objIds, [1, 2]);
        assert.deepEqual(r.maskLogits[1], alone[r.frameIdx].maskLogits[0]);
        assert.equal(r.objScores[1], alone[r.frameIdx].objScores[0]);
      }
      // Without object 1, frame 3 is what object 2 alone gave.
      assert.deepEqual(await p.removeObject(1), [2]);
      const rest = await collect(p.propagateInVideo({ startFrameIdx: 3 }));
      assert.deepEqual(rest.map((r) => r.objIds), [[2]]);
      assert.deepEqual(rest[0].maskLogits[0], alone[3].maskLogits[0]);
      // A frame that arrives while a propagation runs is tracked by it; an object first prompted
      // meanwhile has no output there (it joins at the next propagation).
      const it = p.propagateInVideo({ startFrameIdx: 3 });
      assert.equal((await it.next()).value?.frameIdx, 3);
      p.addFrame(frame(4));
      await p.addNewPointsOrBox({ frameIdx: 3, objId: 5, points: [[10, 10]], labels: [1] });
      const r4 = (await it.next()).value as VideoFrameResult;
      assert.equal(r4.frameIdx, 4);
      assert.deepEqual(r4.objIds, [2, 5]);
      assert.ok(Number.isNaN(r4.objScores[1]) && r4.maskLogits[1].every((v) => v === -1024));
      assert.ok((await it.next()).done);
      const next = await collect(p.propagateInVideo({ startFrameIdx: 3 }));
      assert.deepEqual(next.map((r) => r.frameIdx), [3, 4]);
      assert.ok(next.every((r) => !Number.isNaN(r.objScores[1])));
      // reset forgets every object: propagation needs a prompt again.
      await p.reset();
      await assert.rejects(() => p.propagateInVideo().next(), /no object has prompts/);
      // Reverse from frame 0 yields nothing (as the official).
      await p.addNewPointsOrBox(one);
      assert.deepEqual(await collect(p.propagateInVideo({ startFrameIdx: 0, reverse: true })), []);
    } finally {
      p.dispose();
    }
  },
});
