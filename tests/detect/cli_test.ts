/**
 * The detect-segment CLI: argument parsing, and a run end to end on the fixture photo with
 * the fixture stand-in detector and a stand-in SAM (masks = boxes), writing overlay.png and
 * annotations.json.
 */
import assert from "node:assert/strict";
import { Image } from "imagescript";
import {
  type LoadedPredictor,
  parseDetectSegmentArgs,
  runDetectSegment,
} from "../../src/cli/detect_segment.ts";
import { cocoDecodeRle, rleToMask } from "../../src/amg/rle.ts";
import type { Prompt, RgbImage } from "../../src/types.ts";
import { fixtureDir, sharedFixture, skipIfMissing } from "../util/fixtures.ts";
import { runDeno } from "../util/run_deno.ts";

Deno.test("detect-segment CLI: arguments", () => {
  const a = parseDetectSegmentArgs([
    "photo.jpg",
    "--detector",
    "y.onnx",
    "--out",
    "o",
    "--classes",
    "dog, traffic light,",
    "--score=0.5",
  ]);
  assert.deepEqual(a, {
    image: "photo.jpg",
    detector: "y.onnx",
    out: "o",
    classes: ["dog", "traffic light"],
    score: 0.5,
    iou: 0.5,
    maxDetections: 300,
    maxMaskPixels: 256 * 1024 * 1024,
    model: undefined,
    provider: "auto",
    overwrite: false,
    format: "rle",
    polygonTolerance: 0.5,
  });
  const base = ["p.png", "--detector", "d.onnx", "--out", "o"];
  assert.equal(parseDetectSegmentArgs([...base, "--classes", ""]).classes, undefined);
  assert.throws(() => parseDetectSegmentArgs(["--detector", "d", "--out", "o"]), /no image given/);
  assert.throws(
    () => parseDetectSegmentArgs(["p.png", "--out", "o"]),
    /--detector <model.onnx> is required/,
  );
  assert.throws(
    () => parseDetectSegmentArgs(["p.png", "--detector", "d"]),
    /--out <dir> is required/,
  );
  assert.throws(
    () => parseDetectSegmentArgs([...base, "--score", "x"]),
    /--score must be a number, got 'x'/,
  );
  assert.throws(() => parseDetectSegmentArgs([...base, "--iou", "1.5"]), /--iou must be at most 1/);
  // Each detection is a full-size mask: a million of them was 1.3 GB at 2000 (issue 21.12).
  assert.throws(
    () => parseDetectSegmentArgs([...base, "--max-det", "1000000"]),
    /--max-det must be at most 1000, got 1000000/,
  );
  assert.throws(
    () => parseDetectSegmentArgs([...base, "--max-det", "2.5"]),
    /--max-det must be an integer/,
  );
  assert.throws(
    () => parseDetectSegmentArgs([...base, "--provider", "cuda"]),
    /--provider must be auto/,
  );
  assert.throws(() => parseDetectSegmentArgs([...base, "--bogus"]), /bogus/);
});

/** Stand-in SAM: each mask is its box filled (pixel centres inside). */
function boxFillLoader(calls: string[]) {
  return (model: string): Promise<LoadedPredictor> => {
    calls.push(`load ${model}`);
    let image: RgbImage;
    return Promise.resolve({
      setImage(img: RgbImage) {
        image = img;
        return Promise.resolve({
          id: "x",
          width: img.width,
          height: img.height,
          cached: false,
          encodeMs: 0,
        });
      },
      predictBatch(prompts: Prompt[]) {
        calls.push(`batch ${prompts.length}`);
        const { width: w, height: h } = image;
        return Promise.resolve(prompts.map((p) => {
          const m = new Uint8Array(w * h);
          const [x0, y0, x1, y1] = p.box!;
          for (let y = 0; y < h; y++) {
            for (let x = 0; x < w; x++) {
              if (x + 0.5 > x0 && x + 0.5 < x1 && y + 0.5 > y0 && y + 0.5 < y1) m[y * w + x] = 1;
            }
          }
          return {
            width: w,
            height: h,
            masks: [m],
            scores: Float32Array.of(0.9),
            lowResLogits: new Float32Array(0),
            lowResSize: 0,
          };
        }));
      },
      dispose: () => calls.push("dispose"),
    });
  };
}

Deno.test("detect-segment CLI: writes overlay.png and annotations.json", async () => {
  const detectorFile = sharedFixture("detector/yolo_nas_raw.onnx");
  if (skipIfMissing(detectorFile, "detector fixtures")) return;
  const photo = new URL("image.png", fixtureDir("sam-tiny")!).pathname; // 160 x 107
  const out = await Deno.makeTempDir({ prefix: "wgsam_detect_" });
  try {
    const calls: string[] = [];
    const lines: string[] = [];
    const args = parseDetectSegmentArgs([
      photo,
      ...[
        "--detector",
        detectorFile!.pathname,
        "--out",
        out,
        "--model",
        "sam-tiny",
        "--provider",
        "wasm",
      ],
    ]);
    await runDetectSegment(args, boxFillLoader(calls), (l) => lines.push(l));
    assert.deepEqual(calls, ["load sam-tiny", "batch 3", "dispose"]);
    assert.match(lines[0], /yolo-nas, input 640x640, wasm/);
    assert.match(lines[1], /^3 objects in 160x107: dog 0.92, car 0.88, person 0.61/);
    const coco = JSON.parse(await Deno.readTextFile(`${out}/annotations.json`));
    assert.deepEqual(coco.images, [{ id: 1, width: 160, height: 107, file_name: "image.png" }]);
    assert.equal(coco.annotations.length, 3);
    // 160 x 107 -> r = 4, 640 x 428 at (0, 106): the dog's y0 = (200 - 106) / 4 = 23.5.
    assert.deepEqual(coco.annotations[0].bbox, [25, 23.5, 50, 55]);
    const mask = rleToMask(cocoDecodeRle(coco.annotations[0].segmentation));
    assert.equal(mask.reduce((s: number, v: number) => s + v, 0), coco.annotations[0].area);
    assert.equal(coco.annotations[0].area, 50 * 54); // rows 24..77: centres strictly inside 23.5..78.5
    const overlay = await Image.decode(await Deno.readFile(`${out}/overlay.png`));
    assert.deepEqual([overlay.width, overlay.height], [160, 107]);

    // Nothing of the wanted class: SAM is never loaded, the files are still written
    // (--overwrite: they replace the first run's).
    calls.length = 0;
    await Deno.remove(`${out}/annotations.json`);
    await runDetectSegment(
      { ...args, classes: ["giraffe"], overwrite: true },
      boxFillLoader(calls),
      () => {},
    );
    assert.deepEqual(calls, []);
    const empty = JSON.parse(await Deno.readTextFile(`${out}/annotations.json`));
    assert.deepEqual(empty.annotations, []);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("detect-segment CLI: exit codes and messages of the real command", async () => {
  const cli = new URL("../../src/cli/detect_segment.ts", import.meta.url).pathname;
  const run = (...args: string[]) =>
    runDeno(cli, args, { env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" } });
  const help = await run("--help");
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: deno task detect-segment/);
  const usage = await run("--score", "0.5");
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /error: no image given\nRun 'deno task detect-segment --help'/);
  const photo = new URL("image.png", fixtureDir("sam-tiny")!).pathname;
  const missing = await run(photo, "--detector", "/nonexistent.onnx", "--out", "/tmp/x");
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /error: --detector: no such file: \/nonexistent\.onnx/);
  const detector = sharedFixture("detector/yolov8_raw.onnx");
  if (detector) {
    // Known only once the detector is loaded, but still an argument mistake.
    const out = `/tmp/wgsam-detect-unknown-${Deno.pid}`;
    const unknown = await run(
      photo,
      "--detector",
      detector.pathname,
      "--classes",
      "unicorn",
      "--out",
      out,
    );
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /unknown class name "unicorn"/);
    // onnxruntime's load-time warnings (e.g. "Unknown CPU vendor" in a VM) are not printed.
    assert.doesNotMatch(unknown.stderr, /W:onnxruntime|Unknown CPU vendor/);
  }
});

Deno.test("detect-segment CLI: --max-mask-pixels bounds the masks held (fewer detections, said in the log)", async () => {
  const detectorFile = sharedFixture("detector/yolo_nas_raw.onnx");
  if (skipIfMissing(detectorFile, "detector fixtures")) return;
  const photo = new URL("image.png", fixtureDir("sam-tiny")!).pathname; // 160 x 107, 3 objects
  const out = await Deno.makeTempDir({ prefix: "wgsam_detect_bound_" });
  try {
    const args = parseDetectSegmentArgs([
      photo,
      ...["--detector", detectorFile!.pathname, "--out", out, "--provider", "wasm"],
      ...["--max-mask-pixels", String(2 * 160 * 107 + 5)],
    ]);
    const calls: string[] = [];
    const lines: string[] = [];
    await runDetectSegment(args, boxFillLoader(calls), (l) => lines.push(l));
    assert.deepEqual(calls.filter((c) => c.startsWith("batch")), ["batch 2"]);
    assert.match(
      lines.join("\n"),
      /at most 2 detections on this 160x107 photo \(--max-det 300\): their masks must fit in --max-mask-pixels 34245/,
    );
    const coco = JSON.parse(await Deno.readTextFile(`${out}/annotations.json`));
    assert.deepEqual(coco.annotations.map((a: { score: number }) => a.score.toFixed(2)), [
      "0.92",
      "0.88",
    ]);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
