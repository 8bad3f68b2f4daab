/**
 * `--format polygon` in the CLIs: the flags, and the files written (COCO polygons in the JSON,
 * YOLO-seg .txt files that fill back to the masks), with sam-tiny (segment, amg) and a
 * stand-in SAM behind the fixture detector (detect-segment).
 */
import assert from "node:assert/strict";
import { parseSegmentArgs } from "../../src/cli/segment.ts";
import { parseAmgArgs } from "../../src/cli/amg.ts";
import {
  type LoadedPredictor,
  parseDetectSegmentArgs,
  runDetectSegment,
} from "../../src/cli/detect_segment.ts";
import { decodeImage } from "../../src/image.ts";
import { cocoDecodeRle, rleToMask } from "../../src/amg/rle.ts";
import type { Prompt, RgbImage } from "../../src/types.ts";
import { fixtureDir, sharedFixture, skipIfMissing } from "./fixtures.ts";
import { rasterizeEvenOdd } from "./rasterize.ts";
import { runDeno } from "./run_deno.ts";

const photo = new URL("../fixtures/sam-tiny/image.png", import.meta.url).pathname; // 160 x 107

/** The polygons of a YOLO-seg line, in pixels, with its class. */
function yoloLine(line: string, w: number, h: number): { cls: number; ring: number[] } {
  const [cls, ...coords] = line.trim().split(" ").map(Number);
  assert.ok(coords.length >= 6 && coords.length % 2 === 0);
  assert.ok(coords.every((v) => v >= 0 && v <= 1));
  return { cls, ring: coords.map((v, i) => v * (i % 2 ? h : w)) };
}

Deno.test("CLI flags: --format polygon and --polygon-tolerance", () => {
  const seg = parseSegmentArgs([photo, "--point", "1,2", "--out", "o", "--format", "polygon"]);
  assert.deepEqual([seg.polygon, seg.polygonTolerance], [true, 0.5]);
  const exact = parseSegmentArgs([
    photo,
    "--point",
    "1,2",
    "--out",
    "o",
    "--format",
    "polygon",
    "--polygon-tolerance",
    "0",
  ]);
  assert.equal(exact.polygonTolerance, 0);
  assert.equal(parseSegmentArgs([photo, "--point", "1,2", "--out", "o"]).polygon, false);
  assert.throws(
    () => parseSegmentArgs([photo, "--point", "1,2", "--out", "o", "--format", "svg"]),
    /--format must be png or polygon/,
  );
  assert.throws(
    () => parseSegmentArgs([photo, "--point", "1,2", "--out", "o", "--polygon-tolerance", "1"]),
    /goes with --format polygon/,
  );
  const amg = parseAmgArgs(["--input", "a", "--output", "b", "--format=polygon"]);
  assert.deepEqual([amg.polygon, amg.polygonTolerance, amg.convertToRle], [true, 0.5, false]);
  assert.throws(
    () =>
      parseAmgArgs(["--input", "a", "--output", "b", "--format", "polygon", "--convert-to-rle"]),
    /not both/,
  );
  assert.throws(
    () =>
      parseAmgArgs([
        "--input",
        "a",
        "--output",
        "b",
        "--format",
        "polygon",
        "--polygon-tolerance=-2",
      ]),
    /polygon-tolerance must be a number/,
  );
  const base = [photo, "--detector", "d.onnx", "--out", "o"];
  const det = parseDetectSegmentArgs([...base, "--format", "polygon", "--polygon-tolerance", "1"]);
  assert.deepEqual([det.format, det.polygonTolerance], ["polygon", 1]);
  assert.equal(parseDetectSegmentArgs(base).format, "rle");
  assert.throws(() => parseDetectSegmentArgs([...base, "--format", "png"]), /rle or polygon/);
});

Deno.test("segment CLI --format polygon: result.json polygons and a YOLO-seg file (sam-tiny)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-seg-poly-" });
  try {
    const cli = new URL("../../src/cli/segment.ts", import.meta.url).pathname;
    const r = await runDeno(cli, [
      photo,
      ...["--box", "16,21.4,112,90.95", "--model", "sam-tiny", "--out", dir],
      ...["--format", "polygon", "--polygon-tolerance", "0"],
    ], { env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" } });
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(await Deno.readTextFile(`${dir}/result.json`));
    const m = result.masks[0];
    const png = await decodeImage(await Deno.readFile(`${dir}/${m.file}`));
    const mask = new Uint8Array(160 * 107).map((_, i) => png.data[3 * i] === 255 ? 1 : 0);
    assert.ok(mask.some((v) => v));
    assert.deepEqual(rasterizeEvenOdd(m.polygons, 160, 107), mask);
    assert.equal(m.polygon_parents.length, m.polygons.length);
    const lines = (await Deno.readTextFile(`${dir}/image.txt`)).trim().split("\n");
    assert.equal(lines.length, 1);
    const { cls, ring } = yoloLine(lines[0], 160, 107);
    assert.equal(cls, 0);
    // Six decimals of normalized coordinates: within 1e-3 px of the corners, same pixels.
    assert.deepEqual(rasterizeEvenOdd([ring], 160, 107), mask);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("amg CLI --format polygon: <image>.json polygons and <image>.txt (sam-tiny)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-amg-poly-" });
  try {
    const cli = new URL("../../src/cli/amg.ts", import.meta.url).pathname;
    const common = ["--input", photo, "--model", "sam-tiny", "--quiet", "--points-per-side", "4"];
    const loose = ["--pred-iou-thresh", "0", "--stability-score-thresh", "0"];
    const env = { env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" } };
    const rle = await runDeno(cli, [
      ...common,
      ...loose,
      "--output",
      `${dir}/rle`,
      "--convert-to-rle",
    ], env);
    assert.equal(rle.code, 0, rle.stderr);
    const poly = await runDeno(
      cli,
      [
        ...common,
        ...loose,
        "--output",
        `${dir}/poly`,
        "--format",
        "polygon",
        "--polygon-tolerance",
        "0",
      ],
      env,
    );
    assert.equal(poly.code, 0, poly.stderr);
    const a = JSON.parse(await Deno.readTextFile(`${dir}/rle/image.json`));
    const b = JSON.parse(await Deno.readTextFile(`${dir}/poly/image.json`));
    assert.ok(a.length > 0, "sam-tiny with thresholds 0 keeps some masks");
    assert.equal(b.length, a.length);
    const lines = (await Deno.readTextFile(`${dir}/poly/image.txt`)).trim().split("\n");
    let withLines = 0;
    a.forEach((r: { segmentation: { size: [number, number]; counts: string } }, i: number) => {
      const mask = rleToMask(cocoDecodeRle(r.segmentation));
      assert.deepEqual(rasterizeEvenOdd(b[i].segmentation, 160, 107), mask);
      if (mask.some((v) => v)) {
        const { cls, ring } = yoloLine(lines[withLines++], 160, 107);
        assert.equal(cls, 0);
        assert.deepEqual(rasterizeEvenOdd([ring], 160, 107), mask);
      }
    });
    assert.equal(lines.length, withLines);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("detect-segment CLI --format polygon: COCO polygons, YOLO-seg classes", async () => {
  const detectorFile = sharedFixture("detector/yolo_nas_raw.onnx");
  if (skipIfMissing(detectorFile, "detector fixtures")) return;
  const out = await Deno.makeTempDir({ prefix: "wgsam_detect_poly_" });
  try {
    const image = new URL("image.png", fixtureDir("sam-tiny")!).pathname;
    const args = parseDetectSegmentArgs([
      image,
      ...["--detector", detectorFile!.pathname, "--out", out, "--provider", "wasm"],
      ...["--format", "polygon"],
    ]);
    // Stand-in SAM: each box filled (pixel centres inside).
    let current: RgbImage;
    const loader = (): Promise<LoadedPredictor> =>
      Promise.resolve({
        setImage(img: RgbImage) {
          current = img;
          return Promise.resolve({
            id: "x",
            width: img.width,
            height: img.height,
            cached: false,
            encodeMs: 0,
          });
        },
        predictBatch(prompts: Prompt[]) {
          const { width: w, height: h } = current;
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
        dispose: () => {},
      });
    const result = await runDetectSegment(args, loader, () => {});
    const coco = JSON.parse(await Deno.readTextFile(`${out}/annotations.json`));
    assert.deepEqual(coco.annotations.map((a: { category_id: number }) => a.category_id), [
      18,
      3,
      1,
    ]);
    coco.annotations.forEach((a: { segmentation: number[][] }, i: number) => {
      assert.deepEqual(rasterizeEvenOdd(a.segmentation, 160, 107), result.masks[i]);
    });
    const lines = (await Deno.readTextFile(`${out}/image.txt`)).trim().split("\n");
    // YOLO-seg classes are the detector's 0-based indices: dog 16, car 2, person 0.
    assert.deepEqual(lines.map((l) => yoloLine(l, 160, 107).cls), [16, 2, 0]);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
