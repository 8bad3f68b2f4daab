/**
 * mod.ts from a user's own folder: a script in a temporary folder imports it by path, with no
 * deno.json of ours (no --config; the child runs in that folder) and exactly the permissions
 * README.md gives, and runs sam-tiny end to end. Also: the npm: specifiers in src/ carry the
 * same versions as deno.json's imports (which the tests use).
 */
import assert from "node:assert/strict";
import { LOCAL_FIXTURES } from "../util/fixtures.ts";

const MOD = new URL("../../mod.ts", import.meta.url);
const ROOT = new URL("../../", import.meta.url);
const PHOTO = new URL("sam-tiny/image.png", LOCAL_FIXTURES).pathname;

/** The permissions README.md's "Use it from Deno" section gives, read from README.md itself. */
async function readmePermissions(): Promise<string[]> {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const line = /^deno run (--allow-\S+(?: --allow-\S+)*) your_script\.ts$/m.exec(readme);
  assert.ok(line, "README.md gives a `deno run --allow-... your_script.ts` line");
  return line[1].split(" ");
}

Deno.test("mod.ts imports from any folder without our deno.json and runs sam-tiny", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgsam-user-" });
  try {
    await Deno.writeTextFile(
      `${dir}/your_script.ts`,
      `import { readImageFile, SamModel, SamPredictor } from ${JSON.stringify(MOD.href)};
const model = await SamModel.load("sam-tiny");
const predictor = new SamPredictor(model);
await predictor.setImage(await readImageFile(${JSON.stringify(PHOTO)}));
const r = await predictor.predict({ box: [16, 21, 112, 91], multimask: false });
console.log(JSON.stringify({ model: model.name, masks: r.masks.length, pixels: r.masks[0].length,
  on: r.masks[0].reduce((a, b) => a + b, 0) }));
predictor.dispose();
model.dispose();
`,
    );
    const env: Record<string, string> = { NO_COLOR: "1" };
    for (const name of ["HOME", "PATH", "DENO_DIR", "TMPDIR"]) {
      const v = Deno.env.get(name);
      if (v !== undefined) env[name] = v;
    }
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...await readmePermissions(), "your_script.ts"],
      cwd: dir,
      clearEnv: true, // no XDG_RUNTIME_DIR either: the library sets a private one
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const result = JSON.parse(stdout.trim().split("\n").at(-1)!);
    assert.equal(result.model, "sam-tiny");
    assert.equal(result.masks, 1);
    assert.equal(result.pixels, 160 * 107);
    assert.ok(result.on > 0, "the box's mask is not empty");
    assert.doesNotMatch(stderr, /not a dependency|XDG_RUNTIME_DIR is invalid/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("npm: specifiers in src/ match deno.json's imports", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const imports: Record<string, string> = config.imports;
  // onnxruntime-web's protobufjs has an install script (a version check): denied explicitly, so
  // Deno's "Ignored build scripts" warning does not greet every fresh install.
  assert.deepEqual(config.allowScripts, { deny: ["npm:protobufjs"] });
  const seen: string[] = [];
  const walk = async (dir: URL) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(new URL(`${e.name}/`, dir));
      else if (e.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(new URL(e.name, dir));
        for (const m of text.matchAll(/["'](npm:(@?[^@"'/]+(?:\/[^@"']+)?)@([^/"']+))/g)) {
          const [, , name, version] = m;
          seen.push(name);
          assert.equal(imports[name], `npm:${name}@${version}`, `${e.name}: ${m[1]}`);
        }
        // A bare import of a package would need our deno.json.
        for (const name of Object.keys(imports)) {
          assert.doesNotMatch(
            text,
            new RegExp(`from "${name}(/[^"]*)?"|import\\("${name}`),
            e.name,
          );
        }
      }
    }
  };
  await walk(new URL("src/", ROOT));
  assert.ok(seen.includes("imagescript") && seen.includes("onnxruntime-web"), seen.join(","));
});

Deno.test(".ci/run finds README.md's test command inside its code block", async () => {
  const out = await new Deno.Command("bash", {
    args: [new URL(".ci/run", ROOT).pathname, "--print-test-command"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(new TextDecoder().decode(out.stdout), "deno task test\n");
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  assert.match(readme, /<!-- test-command -->\n\n```sh\ndeno task test\n```\n/);
});
