import assert from "node:assert/strict";
import { decodeImage } from "../../src/image.ts";
import { parseSegmentArgs, promptsOf } from "../../src/cli/segment.ts";
import { loadGolden, LOCAL_FIXTURES } from "../util/fixtures.ts";

const tiny = new URL("sam-tiny/", LOCAL_FIXTURES);
const cli = new URL("../../src/cli/segment.ts", import.meta.url).pathname;

async function runCli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env", "--allow-ffi", cli, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { WGSAM_QUIET: "1" },
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("segment CLI: a box on the fixture photo writes the golden mask, overlay and scores", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-segment-" });
  try {
    const image = new URL("image.png", tiny).pathname;
    const r = await runCli([
      image,
      "--box",
      "16,21.4,112,90.95",
      "--model",
      "sam-tiny",
      "--out",
      dir,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(await Deno.readTextFile(`${dir}/result.json`));
    assert.equal(result.masks.length, 1);
    assert.equal(result.model, "sam-tiny");
    const golden = await loadGolden(tiny, "box_single_iou.npy");
    assert.ok(Math.abs(result.masks[0].score - (golden.data as Float32Array)[0]) < 1e-3);
    const png = await decodeImage(await Deno.readFile(`${dir}/${result.masks[0].file}`));
    const logits = (await loadGolden(tiny, "box_single_masks.npy")).data as Float32Array;
    let differ = 0;
    for (let i = 0; i < logits.length; i++) {
      if ((png.data[3 * i] === 255) !== (logits[i] > 0)) differ++;
    }
    assert.ok(differ <= 0.001 * logits.length, `${differ} pixels differ from the golden mask`);
    const overlay = await decodeImage(await Deno.readFile(`${dir}/overlay.png`));
    assert.deepEqual([overlay.width, overlay.height], [160, 107]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("segment CLI: bad arguments give a clear message and exit 2", async () => {
  const cases: [string[], RegExp][] = [
    [["--out", "/tmp/x", "--point", "1,2"], /no image given/],
    [["a.png", "--point", "1,2"], /--out <dir> is required/],
    [["a.png", "--out", "/tmp/x"], /at least one --point or --box/],
    [["a.png", "--out", "/tmp/x", "--point", "1,nan"], /not a finite number/],
    [["a.png", "--out", "/tmp/x", "--point", "1,2,5"], /label must be 1/],
    [["a.png", "--out", "/tmp/x", "--box", "5,5,1,1"], /x0 <= x1/],
    [["a.png", "--out", "/tmp/x", "--frobnicate"], /unknown option --frobnicate/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseSegmentArgs(args), message);
  }
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: deno task segment/);
  const r = await runCli(["--point", "1,2"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^segment: error: no image given\nRun 'deno task segment --help'/);
  // A click far outside the photo (160 x 107: at most 40 pixels beyond an edge) is an argument
  // mistake, found once the photo's size is known: exit 2, no output folder, no model loaded.
  const outside = `/tmp/wgsam-segment-outside-${Deno.pid}`;
  const image = new URL("image.png", tiny).pathname;
  const far = await runCli([image, "--point", "500,375", "--model", "nosuch", "--out", outside]);
  assert.equal(far.code, 2, far.stderr);
  assert.match(far.stderr, /--point \(500, 375\) is outside the 160x107 image/);
  // A model that does not load (exit 2, as serve) leaves no empty output folder behind either.
  const noModel = await runCli([image, "--point", "50,37", "--model", "nosuch", "--out", outside]);
  assert.equal(noModel.code, 2, noModel.stderr);
  assert.match(noModel.stderr, /nosuch/);
  await assert.rejects(Deno.stat(outside), Deno.errors.NotFound);
  // A missing photo is an argument mistake too: exit 2 with one line, no stack trace.
  const missing = await runCli(["/nonexistent.png", "--point", "1,2", "--out", "/tmp/wgsam-x"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /segment: error: image: no such file: \/nonexistent\.png/);
  assert.doesNotMatch(missing.stderr, /at .*\.ts:\d+/);
});

Deno.test("segment CLI: several boxes make one prompt each; points combine with one box", () => {
  const many = parseSegmentArgs(["a.png", "--out", "o", "--box", "0,0,5,5", "--box", "1,1,9,9"]);
  assert.equal(promptsOf(many).length, 2);
  const mixed = parseSegmentArgs([
    "a.png",
    "--out",
    "o",
    "--box",
    "0,0,5,5",
    "--point",
    "2,3,0",
    "--multimask",
  ]);
  assert.deepEqual(promptsOf(mixed), [{
    points: [[2, 3]],
    labels: [0],
    box: [0, 0, 5, 5],
    multimask: true,
  }]);
  assert.throws(
    () =>
      parseSegmentArgs([
        "a.png",
        "--out",
        "o",
        "--box",
        "0,0,5,5",
        "--box",
        "1,1,9,9",
        "--point",
        "1,1",
      ]),
    /one box only/,
  );
});
