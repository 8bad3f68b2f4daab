/**
 * The command lines on a fresh checkout (no installed weights, no XDG_RUNTIME_DIR), as a new
 * user runs them: they fall back to sam-tiny as serve does, with its warning; no
 * "XDG_RUNTIME_DIR is invalid" noise; segment's overlay shows the prompt; amg says where its
 * candidate masks went; neither writes through a symbolic link nor over an earlier result.
 */
import assert from "node:assert/strict";
import { decodeImage } from "../../src/image.ts";
import { FOREGROUND_COLOUR } from "../../src/cli/prompt_marks.ts";
import { LOCAL_FIXTURES } from "../util/fixtures.ts";
import { TASK_PERMISSIONS } from "../util/run_deno.ts";

const src = (path: string) => new URL(`../../src/${path}`, import.meta.url).pathname;
const PHOTO = new URL("sam-tiny/image.png", LOCAL_FIXTURES).pathname;
const XDG_NOISE = /XDG_RUNTIME_DIR is invalid/;

/** A child Deno with a bare environment: no XDG_RUNTIME_DIR, an empty weights folder. */
async function fresh(script: string, args: string[], weightsDir: string) {
  const env: Record<string, string> = { WGSAM_WEIGHTS_DIR: weightsDir, NO_COLOR: "1" };
  for (const name of ["HOME", "PATH", "DENO_DIR", "TMPDIR"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) env[name] = v;
  }
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...TASK_PERMISSIONS, src(script), ...args],
    clearEnv: true,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("segment on a fresh checkout: sam-tiny with its warning, no XDG noise, prompt drawn, no overwrite", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-fresh-segment-" });
  try {
    const out = `${dir}/out`;
    const args = [PHOTO, "--point", "60,50", "--out", out];
    const r = await fresh("cli/segment.ts", args, `${dir}/weights`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /No --model given and none in .*weights\/\./);
    assert.match(r.stderr, /Falling back to the bundled sam-tiny test model/);
    assert.match(r.stderr, /WARNING: Running on the bundled sam-tiny test model .*meaningless/);
    assert.doesNotMatch(r.stderr, XDG_NOISE);
    const result = JSON.parse(await Deno.readTextFile(`${out}/result.json`));
    assert.equal(result.model, "sam-tiny");
    const overlay = await decodeImage(await Deno.readFile(`${out}/overlay.png`));
    const i = 3 * (50 * overlay.width + 60);
    assert.deepEqual(Array.from(overlay.data.subarray(i, i + 3)), [...FOREGROUND_COLOUR]);

    // A second run into the same folder: refused before any work, the first result kept.
    const before = await Deno.readTextFile(`${out}/result.json`);
    const again = await fresh("cli/segment.ts", args, `${dir}/weights`);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /already exists; pass --overwrite to replace it/);
    assert.equal(await Deno.readTextFile(`${out}/result.json`), before);

    // With --overwrite: replaced, and an earlier run's extra masks go with it.
    await Deno.writeFile(`${out}/mask_0_2.png`, new Uint8Array(1));
    const over = await fresh("cli/segment.ts", [...args, "--overwrite"], `${dir}/weights`);
    assert.equal(over.code, 0, over.stderr);
    const files = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    assert.deepEqual(files, ["mask_0_0.png", "overlay.png", "result.json"]);

    // A link planted at result.json: never written through, even with --overwrite.
    const target = `${dir}/precious.txt`;
    await Deno.writeTextFile(target, "keep me");
    await Deno.remove(`${out}/result.json`);
    await Deno.symlink(target, `${out}/result.json`);
    const linked = await fresh("cli/segment.ts", [...args, "--overwrite"], `${dir}/weights`);
    assert.equal(linked.code, 2, linked.stderr);
    assert.match(linked.stderr, /result\.json is a symbolic link; wgsam does not write through/);
    assert.equal(await Deno.readTextFile(target), "keep me");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("amg on a fresh checkout: sam-tiny, the drops per threshold, no write through a link", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-fresh-amg-" });
  try {
    const out = `${dir}/out`;
    await Deno.mkdir(out);
    const target = `${dir}/precious.txt`;
    await Deno.writeTextFile(target, "keep me");
    await Deno.symlink(target, `${out}/image.json`);
    const args = ["--input", PHOTO, "--output", out, "--convert-to-rle", "--points-per-side", "2"];
    const linked = await fresh("cli/amg.ts", [...args, "--overwrite"], `${dir}/weights`);
    assert.equal(linked.code, 2, linked.stderr);
    assert.match(linked.stderr, /image\.json is a symbolic link/);
    assert.equal(await Deno.readTextFile(target), "keep me");
    await Deno.remove(`${out}/image.json`);

    const r = await fresh("cli/amg.ts", args, `${dir}/weights`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Falling back to the bundled sam-tiny test model/);
    assert.match(r.stderr, /WARNING: Running on the bundled sam-tiny test model/);
    assert.doesNotMatch(r.stderr, XDG_NOISE);
    // "12 candidate masks; dropped 12 by pred_iou_thresh; 0 kept": the counts add up.
    const line = /(\d+) candidate masks(?:; dropped ([^;]+))?; (\d+) kept/.exec(r.stdout);
    assert.ok(line, r.stdout);
    const candidates = Number(line[1]);
    assert.equal(candidates, 2 * 2 * 3, "4 points, 3 masks each");
    const drops = (line[2] ?? "").split(", ").filter((s) => s).map((s) => {
      const m = /^(\d+) by (\w+)$/.exec(s);
      assert.ok(m, s);
      return Number(m[1]);
    });
    const kept = Number(line[3]);
    assert.equal(drops.reduce((a, b) => a + b, 0) + kept, candidates);
    const records = JSON.parse(await Deno.readTextFile(`${out}/image.json`));
    assert.equal(records.length, kept);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
