/**
 * `deno task amg` (src/cli/amg.ts) as a subprocess: argument errors exit 2 with a message
 * naming the flag, before any model is loaded. (Runs on sam-tiny: amg_sam_tiny_e2e_test.ts.)
 */
import assert from "node:assert/strict";
import { metadataCsv, parseAmgArgs, pyFloat } from "../../src/cli/amg.ts";
import { fixtureDir } from "../util/fixtures.ts";
import { runCli } from "./cli_runner.ts";

Deno.test("amg CLI: bad arguments exit 2 with a clear message, before loading a model; so does a model that does not load", async () => {
  const dir = await Deno.makeTempDir();
  const image = new URL("image.png", fixtureDir("sam-tiny")!).pathname;
  const cases: [string[], RegExp][] = [
    [["--output", dir], /--input is required/],
    [["--input", `${dir}/nope.png`, "--output", dir], /no such file or folder/],
    [
      ["--input", image, "--output", dir, "--points-per-side", "abc"],
      /--points-per-side must be an integer/,
    ],
    [["--input", image, "--output", dir, "--pred-iou-thresh"], /--pred-iou-thresh needs a value/],
    [["--input", image, "--output", dir, "--frobnicate", "1"], /unknown option --frobnicate/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stdout, /Loading model/);
  }
  // A model that cannot be loaded: exit 2 as serve does, saying why.
  const r = await runCli(["--input", image, "--output", dir, "--model", "no_such_model"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /could not load the model no_such_model: 'no_such_model' is neither/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("amg CLI: argument parsing and metadata.csv formatting (in process)", () => {
  const a = parseAmgArgs([
    "--input=x.png",
    "--output",
    "out",
    "--checkpoint",
    "m.pth",
    "--crop-overlap-ratio",
    "0.25",
    "--points-per-side",
    "16",
    "--convert-to-rle",
  ]);
  assert.deepEqual(
    [a.input, a.output, a.model, a.convertToRle],
    ["x.png", "out", "m.pth", true],
  );
  assert.deepEqual(a.amg, { crop_overlap_ratio: 0.25, points_per_side: 16 });
  assert.throws(
    () => parseAmgArgs(["--input", "a", "--output", "b", "--crop-n-layers=-1"]),
    /at least 0/,
  );
  assert.throws(
    () => parseAmgArgs(["--input", "a", "--output", "b", "--model-type", "vit_x"]),
    /model-type/,
  );
  assert.throws(() => parseAmgArgs(["--input", "a", "--input", "b", "--output", "c"]), /twice/);
  // A grid that cannot be allocated is refused by name (it was "Array buffer allocation failed").
  assert.throws(
    () => parseAmgArgs(["--input", "a", "--output", "b", "--points-per-side", "100000"]),
    /--points-per-side must be at most 1024, got 100000/,
  );
  assert.throws(
    () => parseAmgArgs(["--input", "a", "--output", "b", "--crop-overlap-ratio", "5"]),
    /--crop-overlap-ratio must be at most 0.99/,
  );
  // Python's str(float).
  assert.deepEqual(
    [10, 0.5, 1.5e-5, 0.0001, 0.9512345790863037, NaN].map(pyFloat),
    ["10.0", "0.5", "1.5e-05", "0.0001", "0.9512345790863037", "nan"],
  );
  const csv = metadataCsv([{
    segmentation: new Uint8Array(0),
    area: 7,
    bbox: [1, 2, 3, 4],
    predicted_iou: 0.75,
    point_coords: [[10, 26.75]],
    stability_score: 1,
    crop_box: [0, 0, 160, 107],
  }]);
  assert.equal(
    csv,
    "id,area,bbox_x0,bbox_y0,bbox_w,bbox_h,point_input_x,point_input_y,predicted_iou," +
      "stability_score,crop_box_x0,crop_box_y0,crop_box_w,crop_box_h\n" +
      "0,7,1,2,3,4,10.0,26.75,0.75,1.0,0,0,160,107",
  );
});
