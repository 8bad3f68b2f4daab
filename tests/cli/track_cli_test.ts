/**
 * `deno task track` (src/cli/track.ts): argument and prompt mistakes exit 2 before any work;
 * ffmpeg's frames of a lossless video equal the PNG frames they were made from; and, on the
 * sam2-tiny fixture's 8 frames, --frames and --video runs write the masks SamVideoPredictor
 * gives through the API (PNG and COCO RLE).
 */
import assert from "node:assert/strict";
import { cocoDecodeRle, rleToMask } from "../../src/amg/rle.ts";
import { decodeImage, readImageFile } from "../../src/image.ts";
import { frameFiles, parsePrompts, videoToFrames } from "../../src/cli/track.ts";
import { maskOf, type VideoFrameResult, videoTrackerFactory } from "../../src/video/tracker.ts";
import { sam2File, sam2FixtureJson } from "../sam2/fixture_files.ts";
import { runDeno, TASK_PERMISSIONS } from "../util/run_deno.ts";

const TRACK = new URL("../../src/cli/track.ts", import.meta.url);
const PERMISSIONS = [...TASK_PERMISSIONS, "--allow-run=ffmpeg"];
const framesUrl = sam2File("sam2-tiny", "video/frame_000.png");
const FRAMES = framesUrl ? new URL(".", framesUrl).pathname : null;
const hasFfmpeg = await new Deno.Command("ffmpeg", { args: ["-version"], stdout: "null" })
  .output().then((o) => o.success, () => false);
if (!hasFfmpeg) console.warn("SKIP: track --video tests: ffmpeg is not installed");
if (!FRAMES) console.warn("SKIP: track tests: sam2-tiny/video frames not in the fixtures");

/** The fixture's first three steps (clicks on frames 0 and 3) as prompts.json. */
async function fixturePrompts() {
  const fixture = await sam2FixtureJson("sam2-tiny");
  const adds = (fixture.video.steps as Record<string, unknown>[]).slice(0, 3);
  return {
    prompts: adds.map((s) => ({
      frame_idx: s.frame_idx,
      obj_id: s.obj_id,
      points: s.points,
      labels: s.labels,
    })),
  };
}

/** A lossless video (FFV1 in Matroska) of the fixture frames. */
async function makeVideo(dir: string): Promise<string> {
  const video = `${dir}/clip.mkv`;
  const out = await new Deno.Command("ffmpeg", {
    args: [
      ...["-hide_banner", "-loglevel", "error", "-framerate", "8"],
      ...["-i", `${FRAMES}frame_%03d.png`, "-c:v", "ffv1", "-pix_fmt", "bgr0", video],
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return video;
}

Deno.test("track: argument and prompt mistakes exit 2 with one line, before any model work", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-track-args-" });
  try {
    const prompts = `${dir}/p.json`;
    await Deno.writeTextFile(prompts, JSON.stringify(await fixturePrompts()));
    const frames = FRAMES ?? dir;
    const cases: [string[], RegExp][] = [
      [["--prompts", prompts, "--out", `${dir}/o`], /give one input: --frames DIR or --video FILE/],
      [
        ["--frames", frames, "--video", "x.mp4", "--prompts", prompts, "--out", `${dir}/o`],
        /give one input/,
      ],
      [["--frames", frames, "--out", `${dir}/o`], /--prompts FILE is required/],
      [["--frames", frames, "--prompts", prompts], /--out DIR is required/],
      [
        ["--frames", frames, "--prompts", prompts, "--out", `${dir}/o`, "--format", "jpg"],
        /--format must be png, rle or polygon/,
      ],
      [
        ["--frames", frames, "--prompts", prompts, "--out", `${dir}/o`, "--max-frames", "0"],
        /--max-frames must be at least 1/,
      ],
      [
        ["--frames", `${dir}/absent`, "--prompts", prompts, "--out", `${dir}/o`],
        /--frames: no such folder/,
      ],
      [["--frames", dir, "--prompts", prompts, "--out", `${dir}/o`], /no \.png or \.jpg files/],
      [
        ["--frames", frames, "--prompts", `${dir}/none.json`, "--out", `${dir}/o`],
        /--prompts: no such file/,
      ],
      [
        ["--frames", frames, "--prompts", prompts, "--out", `${dir}/o`, "--model", "sam-tiny"],
        /--model sam-tiny: video tracking needs a SAM 2\.1 model/,
      ],
      [["stray", "--frames", frames], /unexpected argument 'stray'/],
    ];
    for (const [args, message] of cases) {
      const r = await runDeno(TRACK, args, { permissions: PERMISSIONS });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^track: error: .*${message.source}`), args.join(" "));
      assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/, "no stack trace");
    }
    if (FRAMES) {
      // A prompt on a frame the video does not have, and one outside the frames.
      for (
        const [bad, message] of [
          [
            { frame_idx: 8, obj_id: 1, box: [1, 1, 5, 5] },
            /prompt 0 is on frame 8, the video has 8 frames/,
          ],
          [
            { frame_idx: 0, obj_id: 1, points: [[900, 5]], labels: [1] },
            /prompt 0: \(900, 5\) is outside the 160x107 frames/,
          ],
        ] as const
      ) {
        await Deno.writeTextFile(prompts, JSON.stringify([bad]));
        const r = await runDeno(TRACK, [
          "--frames",
          FRAMES,
          "--prompts",
          prompts,
          "--out",
          `${dir}/o`,
          "--model",
          "sam2-tiny",
        ], { permissions: PERMISSIONS });
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, message);
      }
      assert.ok(!(await Deno.stat(`${dir}/o`).then(() => true, () => false)), "no output folder");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("track: prompts.json mistakes name the prompt", () => {
  const cases: [string, RegExp][] = [
    ["{", /not JSON/],
    ['{"objects": []}', /expected \{"prompts": \[\.\.\.\]\} or an array/],
    ["[]", /no prompts/],
    ['[{"frame_idx": 0, "obj_id": 1}]', /prompt 0: give points \(with labels\) or a box/],
    [
      '[{"frame_idx": -1, "obj_id": 1, "box": [0,0,1,1]}]',
      /prompt 0: frame_idx must be a non-negative integer/,
    ],
    [
      '[{"frame_idx": 0, "obj_id": "a", "box": [0,0,1,1]}]',
      /obj_id must be a non-negative integer/,
    ],
    ['[{"frame_idx": 0, "obj_id": 1, "points": [[1,2]]}]', /points and labels go together/],
    [
      '[{"frame_idx": 0, "obj_id": 1, "points": [[1,2]], "labels": [2]}]',
      /labels must be one 0 or 1 per point/,
    ],
    ['[{"frame_idx": 0, "obj_id": 1, "box": [5,5,1,1]}]', /box needs x0 <= x1/],
    ['[{"frame_idx": 0, "obj_id": 1, "box": [0,0,1,1], "mask": 1}]', /unknown field "mask"/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parsePrompts(text, "p.json"), message, text);
  }
  assert.deepEqual(
    parsePrompts('{"prompts": [{"frame_idx": 2, "obj_id": 7, "box": [1, 2, 3, 4]}]}', "p"),
    [
      { frameIdx: 2, objId: 7, points: undefined, labels: undefined, box: [1, 2, 3, 4] },
    ],
  );
});

Deno.test({
  name: "track: ffmpeg's frames of a lossless video are the PNG frames, in order",
  ignore: !hasFfmpeg || !FRAMES,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "wgsam-track-ffmpeg-" });
    try {
      const video = await makeVideo(dir);
      await Deno.mkdir(`${dir}/frames`);
      const decoded = await videoToFrames(video, `${dir}/frames`);
      const originals = await frameFiles(FRAMES!);
      assert.equal(decoded.length, 8);
      for (let i = 0; i < 8; i++) {
        const a = await readImageFile(decoded[i]);
        const b = await readImageFile(originals[i]);
        assert.equal(a.width, b.width);
        assert.ok(a.data.every((v, k) => v === b.data[k]), `frame ${i} differs`);
      }
      await Deno.mkdir(`${dir}/two`);
      assert.equal((await videoToFrames(video, `${dir}/two`, 2)).length, 2, "-frames:v");
      // Not a video: ffmpeg's own complaint, as a runtime failure.
      await Deno.writeTextFile(`${dir}/bad.mp4`, "not a video");
      await Deno.mkdir(`${dir}/bad`);
      await assert.rejects(videoToFrames(`${dir}/bad.mp4`, `${dir}/bad`), /ffmpeg could not read/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "track on sam2-tiny: --frames (PNG) and --video (COCO RLE) write the API's masks",
  ignore: !FRAMES,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "wgsam-track-e2e-" });
    try {
      const promptsJson = await fixturePrompts();
      await Deno.writeTextFile(`${dir}/p.json`, JSON.stringify(promptsJson));
      // The API's answer: prompts, then forward propagation from frame 0.
      const factory = videoTrackerFactory("sam2-tiny");
      const api = await factory.create();
      const want = new Map<number, VideoFrameResult>();
      try {
        for (const f of await frameFiles(FRAMES!)) api.addFrame(await readImageFile(f));
        for (const p of parsePrompts(JSON.stringify(promptsJson), "p")) {
          await api.addNewPointsOrBox(p);
        }
        for await (const r of api.propagateInVideo({ startFrameIdx: 0 })) want.set(r.frameIdx, r);
      } finally {
        api.dispose();
        factory.close();
      }
      assert.equal(want.size, 8);

      const png = await runDeno(TRACK, [
        ...["--frames", FRAMES!, "--prompts", `${dir}/p.json`, "--out", `${dir}/png`],
        ...["--model", "sam2-tiny"],
      ], { permissions: PERMISSIONS });
      assert.equal(png.code, 0, png.stderr);
      const pngTrack = JSON.parse(await Deno.readTextFile(`${dir}/png/track.json`));
      assert.equal(pngTrack.frames.length, 8);
      for (const frame of pngTrack.frames) {
        const w = want.get(frame.frame_idx)!;
        assert.deepEqual(frame.objects.map((o: { obj_id: number }) => o.obj_id), w.objIds);
        for (const [k, o] of frame.objects.entries()) {
          const image = await decodeImage(await Deno.readFile(`${dir}/png/${o.png}`));
          const ref = maskOf(w.maskLogits[k]);
          let diff = 0;
          for (let i = 0; i < ref.length; i++) {
            diff += (image.data[i * image.channels] > 127 ? 1 : 0) !== ref[i] ? 1 : 0;
          }
          assert.equal(diff, 0, `frame ${frame.frame_idx} obj ${o.obj_id} PNG`);
        }
      }
      if (!hasFfmpeg) return;
      const video = await makeVideo(dir);
      const rle = await runDeno(TRACK, [
        ...["--video", video, "--prompts", `${dir}/p.json`, "--out", `${dir}/rle`],
        ...["--format", "rle", "--model", "sam2-tiny"],
      ], { permissions: PERMISSIONS });
      assert.equal(rle.code, 0, rle.stderr);
      const rleTrack = JSON.parse(await Deno.readTextFile(`${dir}/rle/track.json`));
      assert.equal(rleTrack.format, "coco_rle");
      for (const frame of rleTrack.frames) {
        const w = want.get(frame.frame_idx)!;
        for (const [k, o] of frame.objects.entries()) {
          const mask = rleToMask(cocoDecodeRle(o.rle));
          const ref = maskOf(w.maskLogits[k]);
          assert.ok(
            mask.every((v, i) => v === ref[i]),
            `frame ${frame.frame_idx} obj ${o.obj_id} RLE`,
          );
          assert.equal(o.object_score, w.objScores[k]);
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
