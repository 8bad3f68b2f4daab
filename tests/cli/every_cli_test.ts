/**
 * Every command line, as a child process the way `deno task` runs it: a full --help (exit 0),
 * the same wording and exit 2 for an unknown flag and for a missing input, a clear error for
 * convert into a missing folder, and convert's progress without `\r` when stderr is not a
 * terminal.
 */
import assert from "node:assert/strict";
import { LOCAL_FIXTURES } from "../util/fixtures.ts";
import { runDeno, TASK_PERMISSIONS } from "../util/run_deno.ts";

const src = (path: string) => new URL(`../../src/${path}`, import.meta.url).pathname;
const TINY_PTH = new URL("sam-tiny/sam-tiny.pth", LOCAL_FIXTURES).pathname;
const PHOTO = new URL("sam-tiny/image.png", LOCAL_FIXTURES).pathname;

/** name, script, the task's permissions, a valid command line with a placeholder input. */
const CLIS: [string, string, string[], (input: string, out: string) => string[]][] = [
  ["segment", "cli/segment.ts", TASK_PERMISSIONS, (i, o) => [i, "--point", "5,5", "--out", o]],
  ["amg", "cli/amg.ts", TASK_PERMISSIONS, (i, o) => ["--input", i, "--output", o]],
  [
    "detect-segment",
    "cli/detect_segment.ts",
    TASK_PERMISSIONS,
    (i, o) => [i, "--detector", "d.onnx", "--out", o],
  ],
  ["convert", "weights/convert_cli.ts", ["--allow-read", "--allow-write"], (i, o) => [i, o]],
  ["weights", "weights/weights_cli.ts", TASK_PERMISSIONS, () => ["vit_b", "--dir", "/tmp"]],
  [
    "bench:report",
    "../bench/report.ts",
    [...TASK_PERMISSIONS, "--allow-run", "--allow-sys"],
    () => ["--quick"],
  ],
  ["serve", "server.ts", TASK_PERMISSIONS, () => []],
  [
    "track",
    "cli/track.ts",
    [...TASK_PERMISSIONS, "--allow-run=ffmpeg"],
    (i, o) => ["--video", i, "--prompts", "prompts.json", "--out", o],
  ],
  [
    "bench:page",
    "../bench/page_click.ts",
    ["--allow-all"], // Playwright drives Chromium
    (i) => ["--image", i],
  ],
];

Deno.test("every CLI: --help, unknown flags and missing inputs, the same way", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-clis-" });
  try {
    for (const [name, script, permissions, line] of CLIS) {
      const run = (args: string[]) => runDeno(src(script), args, { permissions });
      const help = await run(["--help"]);
      assert.equal(help.code, 0, `${name} --help: ${help.stderr}`);
      assert.match(help.stdout, new RegExp(`^Usage: deno task ${name} `), name);
      assert.match(help.stdout, /-h, --help/, `${name} --help lists its flags`);
      assert.match(help.stdout, /Exit status: 0 done, 1 .*, 2 a bad argument/s, name);
      const short = await run(["-h"]);
      assert.equal(short.stdout, help.stdout, `${name} -h`);

      const unknown = await run([...line(PHOTO, `${dir}/out-${name}`), "--frobnicate"]);
      assert.equal(unknown.code, 2, `${name} --frobnicate: ${unknown.stderr}`);
      assert.equal(
        unknown.stderr,
        `${name}: error: unknown option --frobnicate\nRun 'deno task ${name} --help' for usage.\n`,
      );
      if (name === "weights" || name === "bench:report" || name === "serve") continue; // no input

      const missing = await run(line(`${dir}/no-such-input.png`, `${dir}/out-${name}`));
      assert.equal(missing.code, 2, `${name} with a missing input: ${missing.stderr}`);
      assert.match(missing.stderr, new RegExp(`^${name}: error: .*no such .*no-such-input\\.png`));
      assert.doesNotMatch(missing.stderr, /at .*\.ts:\d+/, "no stack trace");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every GPU CLI: --precision f32|f16 in --help, a bad value exits 2 in the shared wording", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-precision-" });
  try {
    const gpuClis = CLIS.filter(([name]) =>
      ["segment", "amg", "detect-segment", "serve"].includes(name)
    );
    gpuClis.push(["tune", "cli/tune.ts", TASK_PERMISSIONS, () => []]);
    for (const [name, script, permissions, line] of gpuClis) {
      const run = (args: string[]) => runDeno(src(script), args, { permissions });
      const help = await run(["--help"]);
      assert.match(help.stdout, /--precision/, `${name} --help names --precision`);
      const bad = await run([...line(PHOTO, `${dir}/out-${name}`), "--precision", "f64"]);
      assert.equal(bad.code, 2, `${name} --precision f64: ${bad.stderr}`);
      assert.equal(
        bad.stderr,
        `${name}: error: --precision: precision must be "f32" or "f16", got "f64"\n` +
          `Run 'deno task ${name} --help' for usage.\n`,
      );
    }
    // And a run in f16 completes: segment on sam-tiny (lavapipe has shader-f16).
    const ok = await runDeno(src("cli/segment.ts"), [
      PHOTO,
      ...["--point", "88,53.5", "--model", TINY_PTH, "--out", `${dir}/f16`, "--precision=f16"],
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const result = JSON.parse(await Deno.readTextFile(`${dir}/f16/result.json`));
    assert.ok(JSON.stringify(result).includes("mask_"), "result.json names its masks");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("segment: a file that is no image is an argument mistake (exit 2), before the model loads", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-notimage-" });
  try {
    await Deno.writeTextFile(`${dir}/notes.png`, "not an image");
    const r = await runDeno(src("cli/segment.ts"), [
      `${dir}/notes.png`,
      ...["--point", "1,1", "--model", "no_such_model", "--out", `${dir}/out`],
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^segment: error: .*notes\.png: /);
    assert.doesNotMatch(r.stderr, /no_such_model/, "refused before the model is looked at");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("convert: a missing output folder is named; progress lines without \\r off a terminal", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-convert-" });
  try {
    const permissions = ["--allow-read", "--allow-write"];
    const cli = src("weights/convert_cli.ts");
    const noFolder = await runDeno(cli, [TINY_PTH, `${dir}/absent/tiny.safetensors`], {
      permissions,
    });
    assert.equal(noFolder.code, 2, noFolder.stderr);
    assert.match(
      noFolder.stderr,
      /^convert: error: the output folder .*\/absent does not exist; create it first\n/,
    );
    assert.doesNotMatch(noFolder.stderr, /\.partial/);

    const out = `${dir}/tiny.safetensors`;
    const ok = await runDeno(cli, [TINY_PTH, out], { permissions });
    assert.equal(ok.code, 0, ok.stderr);
    assert.doesNotMatch(ok.stderr, /\r/, "no carriage returns in a log");
    const lines = ok.stderr.trimEnd().split("\n");
    assert.ok(lines.length <= 6, `a line per quarter at most:\n${ok.stderr}`);
    assert.match(lines.at(-2)!, /^convert: 100% \(174\/174 tensors/);
    assert.match(lines.at(-1)!, /^convert: wrote .*tiny\.safetensors in/);

    // The output exists now: refused without --overwrite, replaced with it.
    const again = await runDeno(cli, [TINY_PTH, out], { permissions });
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /tiny\.safetensors already exists; pass --overwrite/);
    const replaced = await runDeno(cli, [TINY_PTH, out, "--overwrite"], { permissions });
    assert.equal(replaced.code, 0, replaced.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
