/**
 * The video routes on sam2-tiny with the fixture's 8 frames (../shared/fixtures/sam2-tiny/
 * video): the fixture's steps sent over HTTP give, frame by frame, the very masks and object
 * scores that SamVideoPredictor gives through the API: prompts, both streamed NDJSON
 * propagations and the correction on a tracked frame between them.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { loadSamEngine } from "../../src/server/sam_engine.ts";
import { readImageFile } from "../../src/image.ts";
import { maskOf, type VideoFrameResult, videoTrackerFactory } from "../../src/video/tracker.ts";
import { BASE, call, decodeCocoMask } from "../server/helpers.ts";
import { sam2File, sam2Files, sam2FixtureJson } from "./fixture_files.ts";

const have = sam2Files(
  "sam2-tiny",
  ["sam2-tiny.pt", "fixture.json", "video/frame_000.png", "video/frame_007.png"],
  "server video",
);

interface Step {
  op: string;
  frame_idx?: number;
  obj_id?: number;
  points?: [number, number][];
  labels?: number[];
  start_frame_idx?: number | null;
  reverse?: boolean;
}

function assertSameFrame(line: Record<string, unknown>, want: VideoFrameResult, what: string) {
  assert.equal(line.frame_idx, want.frameIdx, what);
  const objects = line.objects as {
    obj_id: number;
    object_score: number | null;
    rle: { size: [number, number]; counts: string };
  }[];
  assert.deepEqual(objects.map((o) => o.obj_id), want.objIds, what);
  objects.forEach((o, k) => {
    const score = want.objScores[k];
    assert.equal(o.object_score, Number.isFinite(score) ? score : null, `${what} obj ${o.obj_id}`);
    const mask = decodeCocoMask(o.rle);
    const ref = maskOf(want.maskLogits[k]);
    let diff = 0;
    for (let i = 0; i < ref.length; i++) diff += mask[i] !== ref[i] ? 1 : 0;
    assert.equal(diff, 0, `${what} obj ${o.obj_id}: ${diff} pixels differ from the API's mask`);
  });
}

Deno.test({
  name: "server video on sam2-tiny: the fixture's steps over HTTP give the API's masks",
  ignore: !have,
  async fn() {
    const fixture = await sam2FixtureJson("sam2-tiny");
    const steps = fixture.video.steps as Step[];
    const engine = await loadSamEngine("sam2-tiny", { cacheBytes: 16 * 1024 * 1024, quiet: true });
    const factory = videoTrackerFactory("sam2-tiny");
    const app = createApp({ engine, log: () => {}, video: factory });
    const api = await factory.create();
    try {
      const created = await call(app, "POST", "/api/videos", {});
      assert.equal(created.status, 201, JSON.stringify(created.json));
      const v = `/api/videos/${created.json.id}`;
      for (let i = 0; i < fixture.video.frames.length; i++) {
        const url = sam2File("sam2-tiny", fixture.video.frames[i])!;
        const r = await call(app, "POST", `${v}/frames`, await Deno.readFile(url), {
          "content-type": "image/png",
        });
        assert.equal(r.status, 200, JSON.stringify(r.json));
        assert.equal(r.json.frame_idx, api.addFrame(await readImageFile(url)));
      }
      let propagations = 0;
      for (const step of steps) {
        if (step.op === "add_new_points_or_box") {
          const prompt = {
            frameIdx: step.frame_idx!,
            objId: step.obj_id!,
            points: step.points!,
            labels: step.labels!,
          };
          const want = await api.addNewPointsOrBox(prompt);
          const r = await call(app, "POST", `${v}/prompts`, {
            frame_idx: prompt.frameIdx,
            obj_id: prompt.objId,
            points: prompt.points,
            labels: prompt.labels,
          });
          assert.equal(r.status, 200, JSON.stringify(r.json));
          assertSameFrame(r.json, want, `prompt on frame ${prompt.frameIdx}`);
          continue;
        }
        const opts = {
          ...(step.start_frame_idx != null ? { startFrameIdx: step.start_frame_idx } : {}),
          ...(step.reverse ? { reverse: true } : {}),
        };
        const wants: VideoFrameResult[] = [];
        for await (const frame of api.propagateInVideo(opts)) wants.push(frame);
        const res = await app(
          new Request(`${BASE}${v}/propagate`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              ...(opts.startFrameIdx !== undefined ? { start_frame_idx: opts.startFrameIdx } : {}),
              ...(opts.reverse ? { reverse: true } : {}),
            }),
          }),
        );
        assert.equal(res.status, 200);
        const lines = (await res.text()).trimEnd().split("\n").map((l) => JSON.parse(l));
        assert.deepEqual(lines.at(-1), { done: true, frames: wants.length });
        assert.ok(wants.length > 0);
        wants.forEach((w, i) =>
          assertSameFrame(lines[i], w, `propagation ${propagations} line ${i}`)
        );
        propagations++;
      }
      assert.equal(propagations, 2, "both propagations of the fixture ran");

      // A live-stream session keeps only the last history_frames frames: a prompt on an older
      // one is refused (410) and says why.
      const live = await call(app, "POST", "/api/videos", { history_frames: 0 });
      assert.equal(live.status, 201, JSON.stringify(live.json));
      assert.equal(live.json.history_frames, 0);
      const l = `/api/videos/${live.json.id}`;
      for (const name of fixture.video.frames.slice(0, 2)) {
        const r = await call(
          app,
          "POST",
          `${l}/frames`,
          await Deno.readFile(sam2File("sam2-tiny", name)!),
          {
            "content-type": "image/png",
          },
        );
        assert.equal(r.status, 200, JSON.stringify(r.json));
      }
      const old = await call(app, "POST", `${l}/prompts`, {
        frame_idx: 0,
        obj_id: 1,
        points: [[16, 40]],
        labels: [1],
      });
      assert.equal(old.status, 410, JSON.stringify(old.json));
      assert.match(old.json.error as string, /frame 0 was dropped/);
      assert.equal((await call(app, "DELETE", l)).status, 200);
    } finally {
      api.dispose();
      app.close();
      await app.queue.always(() => {});
      factory.close();
      engine.dispose();
    }
  },
});
