/**
 * The pieces every command line shares (src/cli/): one argument parser and its wording,
 * outputs that never go through a symbolic link nor over an existing file without
 * --overwrite, the default model (what serve does), the prompts drawn on segment's overlay.
 */
import assert from "node:assert/strict";
import { numberFlag, parseFlags, UsageError, wantsHelp } from "../../src/cli/args.ts";
import { parseSegmentArgs } from "../../src/cli/segment.ts";
import { parseAmgArgs } from "../../src/cli/amg.ts";
import { parseDetectSegmentArgs } from "../../src/cli/detect_segment.ts";
import { checkOutputFiles, writeOutput } from "../../src/cli/output.ts";
import { chooseModel, MEANINGLESS_WARNING } from "../../src/cli/model.ts";
import { MEANINGLESS_WARNING as SERVER_WARNING } from "../../src/server/app.ts";
import {
  BACKGROUND_COLOUR,
  BOX_COLOUR,
  drawPrompts,
  FOREGROUND_COLOUR,
} from "../../src/cli/prompt_marks.ts";

Deno.test("parseFlags: one wording for unknown flags, missing values, switches with values, repeats", () => {
  const options = {
    out: { type: "string" },
    point: { type: "string", multiple: true },
    quiet: { type: "boolean" },
  } as const;
  const ok = parseFlags(
    ["a.png", "--out=o", "--point", "1,2", "--point", "3,4", "--quiet"],
    options,
  );
  assert.deepEqual(ok.positionals, ["a.png"]);
  assert.equal(ok.values.out, "o");
  assert.deepEqual(ok.values.point, ["1,2", "3,4"]);
  assert.equal(ok.values.quiet, true);
  const fails: [string[], RegExp][] = [
    [["--frobnicate"], /^unknown option --frobnicate$/],
    // Names of Object.prototype are no flags (issue 21.10's allow-list finding).
    [["--__proto__", "x"], /^unknown option --__proto__$/],
    [["--toString"], /^unknown option --toString$/],
    [["--out"], /^--out needs a value$/],
    [
      ["--point", "-5,3"],
      /^--point needs a value \(for a value starting with '-', write --point=<value>\)$/,
    ],
    [["--quiet=yes"], /^--quiet takes no value$/],
    [["--out", "a", "--out", "b"], /^--out given twice$/],
  ];
  for (const [argv, message] of fails) {
    assert.throws(() => parseFlags(argv, options), (e: Error) => {
      assert.ok(e instanceof UsageError, `${argv}: ${e}`);
      assert.match(e.message, message);
      return true;
    });
  }
  assert.deepEqual(parseFlags(["--point=-5,3"], options).values.point, ["-5,3"]);
  // An empty --model is a mistake, not "the default model".
  assert.throws(
    () => parseSegmentArgs(["a.png", "--out", "o", "--box", "0,0,1,1", "--model="]),
    /--model needs a value/,
  );
  assert.throws(
    () => parseAmgArgs(["--input", "a", "--output", "o", "--model", ""]),
    /--model needs a value/,
  );
  assert.throws(
    () => parseDetectSegmentArgs(["a.png", "--detector", "d", "--out", "o", "--model="]),
    /--model needs a value/,
  );
  assert.equal(wantsHelp(["a", "-h"]), true);
  assert.equal(wantsHelp(["--", "--help"]), false);
  assert.equal(numberFlag("n", "3", { integer: true, min: 1 }), 3);
  assert.throws(
    () => numberFlag("n", "2.5", { integer: true }),
    /--n must be an integer, got '2.5'/,
  );
  assert.throws(() => numberFlag("n", "", {}), /--n must be a number/);
  assert.throws(() => numberFlag("n", "7", { max: 5 }), /--n must be at most 5, got 7/);
});

Deno.test("outputs: no writing through a symbolic link, no overwrite without --overwrite", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-output-" });
  try {
    const target = `${dir}/precious.txt`;
    await Deno.writeTextFile(target, "keep me");
    await Deno.symlink(target, `${dir}/result.json`);
    for (const overwrite of [false, true]) {
      await assert.rejects(
        checkOutputFiles([`${dir}/result.json`], overwrite),
        /result\.json is a symbolic link; wgsam does not write through links/,
      );
      await assert.rejects(writeOutput(`${dir}/result.json`, "x", overwrite), /symbolic link/);
    }
    assert.equal(await Deno.readTextFile(target), "keep me");

    await writeOutput(`${dir}/new.json`, "one", false);
    await assert.rejects(
      checkOutputFiles([`${dir}/new.json`], false),
      /new\.json already exists; pass --overwrite to replace it/,
    );
    await assert.rejects(writeOutput(`${dir}/new.json`, "two", false), /already exists/);
    assert.equal(await Deno.readTextFile(`${dir}/new.json`), "one");
    await checkOutputFiles([`${dir}/new.json`], true);
    await writeOutput(`${dir}/new.json`, "two", true);
    assert.equal(await Deno.readTextFile(`${dir}/new.json`), "two");
    // No temporary file is left behind by the replacing write.
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["new.json", "precious.txt", "result.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("default model: the installed one, else sam-tiny saying so; the server's warning word for word", async () => {
  assert.equal(MEANINGLESS_WARNING, SERVER_WARNING);
  const dir = await Deno.makeTempDir({ prefix: "wgsam-weights-" });
  const before = Deno.env.get("WGSAM_WEIGHTS_DIR");
  try {
    Deno.env.set("WGSAM_WEIGHTS_DIR", dir);
    const lines: string[] = [];
    assert.equal(chooseModel(undefined, (l) => lines.push(l)), "sam-tiny");
    assert.match(lines.join("\n"), /Falling back to the bundled sam-tiny test model/);
    assert.equal(chooseModel("vit_l", () => assert.fail("no log for a given model")), "vit_l");
    await Deno.writeFile(`${dir}/vit_b.safetensors`, new Uint8Array(1));
    lines.length = 0;
    assert.equal(chooseModel(undefined, (l) => lines.push(l)), `${dir}/vit_b.safetensors`);
    assert.match(lines[0], /model: .*vit_b\.safetensors \(found in/);
  } finally {
    if (before === undefined) Deno.env.delete("WGSAM_WEIGHTS_DIR");
    else Deno.env.set("WGSAM_WEIGHTS_DIR", before);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("segment overlay: points and boxes drawn in their colours, clipped at the edges", () => {
  const w = 200, h = 100;
  const rgba = new Uint8Array(w * h * 4);
  drawPrompts(rgba, w, h, {
    points: [[50, 50], [150, 20], [199, 99]],
    labels: [1, 0, 1],
    boxes: [[10, 10, 120, 80]],
  });
  const at = (x: number, y: number) =>
    Array.from(rgba.subarray(4 * (y * w + x), 4 * (y * w + x) + 3));
  assert.deepEqual(at(50, 50), [...FOREGROUND_COLOUR]);
  assert.deepEqual(at(151, 21), [...BACKGROUND_COLOUR]);
  assert.deepEqual(at(199, 99), [...FOREGROUND_COLOUR]); // a corner point: drawn, not thrown
  assert.deepEqual(at(60, 10), [...BOX_COLOUR]); // top edge
  assert.deepEqual(at(120, 40), [...BOX_COLOUR]); // right edge
  assert.deepEqual(at(60, 8), [0, 0, 0]); // the dark rim outside it
  assert.deepEqual(at(90, 60), [0, 0, 0]); // inside the box, away from the marks: untouched
  assert.equal(rgba[4 * (60 * w + 90) + 3], 0);
});
