/**
 * Registry entries of the edge models: mobile_sam (a verified download: the weights CLI
 * against a loopback server, its size and MD5 checks wired to the published file; a MobileSAM
 * checkpoint downloaded, verified and converted end to end under a test entry) and the
 * by-hand slimsam_77 / slimsam_50 (steps printed, a placed file converted and resolved).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { loadSam, loadStateDict } from "../../src/weights/load.ts";
import { getModel, resolveModel } from "../../src/weights/registry.ts";
import { findManualModel } from "../../src/weights/manual_models.ts";
import { fixtureDir, skipIfMissing } from "../util/fixtures.ts";
import { withTempDir } from "./helpers.ts";
import { startServer } from "./download_server.ts";

const CLI = new URL("../../src/weights/weights_cli.ts", import.meta.url);

async function runCli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-net", "--allow-env", CLI.href, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("mobile_sam entry: ChaoningZhang/MobileSAM's weights/mobile_sam.pt, size and MD5 enforced", async () => {
  const e = getModel("mobile_sam");
  assert.equal(e.fileName, "mobile_sam.pt");
  assert.equal(
    e.url,
    "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
  );
  assert.equal(e.bytes, 40_728_226);
  assert.match(e.md5 ?? "", /^[0-9a-f]{32}$/);
  // A mirror serving another file of another size: refused before conversion, exit 1.
  const wrong = new Uint8Array(1234);
  const server = startServer({ files: { "/mirror/mobile_sam.pt": wrong } });
  try {
    await withTempDir(async (dir) => {
      const r = await runCli(["--dir", dir, "--url", `${server.url}/mirror`, "mobile_sam"]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /is 1234 bytes, expected 40728226: not the published mobile_sam\.pt/);
      assert.equal(server.requests[0].path, "/mirror/mobile_sam.pt");
    });
  } finally {
    await server.close();
  }
});

Deno.test("a MobileSAM checkpoint downloads, verifies and converts through the weights CLI", async () => {
  const dir = fixtureDir("mobilesam");
  if (skipIfMissing(dir, "MobileSAM download and conversion")) return;
  const bytes = await Deno.readFile(new URL("mobilesam.pth", dir!));
  const server = startServer({ files: { "/m/mobile_sam_test.pt": bytes } });
  try {
    await withTempDir(async (tmp) => {
      const registry = `${tmp}/registry.json`;
      await Deno.writeTextFile(
        registry,
        JSON.stringify({
          models: [{
            name: "mobile-test",
            fileName: "mobile_sam_test.pt",
            bytes: bytes.length,
            md5: createHash("md5").update(bytes).digest("hex"),
          }],
        }),
      );
      const r = await runCli([
        "--dir",
        `${tmp}/w`,
        "--registry",
        registry,
        "--url",
        `${server.url}/m`,
        "mobile-test",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /mobile-test ready: .*mobile-test\.safetensors/);
      // The conversion keeps every float tensor (BatchNorm statistics included) bit for bit.
      const original = await loadStateDict(new URL("mobilesam.pth", dir!));
      const { sd, arch } = await loadSam(`${tmp}/w/mobile-test.safetensors`);
      assert.equal(arch.embedDim, 320);
      for (const [name, t] of original) {
        if (name.endsWith("num_batches_tracked")) {
          assert.ok(!sd.has(name), `${name} dropped`);
          continue;
        }
        assert.deepEqual(sd.get(name)?.bytes, t.bytes, name);
      }
    });
  } finally {
    await server.close();
  }
});

Deno.test("slimsam_77 / slimsam_50: steps by hand, then a placed file converts and resolves", async () => {
  await withTempDir(async (tmp) => {
    for (const name of ["slimsam_77", "slimsam_50"]) {
      const r = await runCli(["--dir", tmp, name]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`model '${name}' has no download that wgsam can verify`));
      assert.match(r.stderr, /github\.com\/czg1225\/SlimSAM/);
      assert.match(r.stderr, /huggingface\.co\/Zigeng\/SlimSAM-uniform-(77|50)/);
      assert.match(r.stderr, /deno task convert <file> /);
      await assert.rejects(resolveModel(name, { weightsDir: tmp }), /is not installed/);
    }
    const dir = fixtureDir("slimsam");
    if (skipIfMissing(dir, "slimsam_77 conversion of a placed file")) return;
    const m = findManualModel("slimsam_77")!;
    await Deno.copyFile(new URL("slimsam.pth", dir!), `${tmp}/${m.fileNames[0]}`);
    assert.equal(await resolveModel("slimsam_77", { weightsDir: tmp }), `${tmp}/${m.fileNames[0]}`);
    const r = await runCli(["--dir", tmp, "slimsam_77"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /slimsam_77 ready: .*slimsam_77\.safetensors \(converted from /);
    const path = await resolveModel("slimsam_77", { weightsDir: tmp });
    assert.equal(path, `${tmp}/slimsam_77.safetensors`);
    const { arch } = await loadSam(path);
    assert.deepEqual([arch.embedDim, arch.numHeads, arch.encoderMlpDim], [168, 12, 696]);
    const again = await runCli(["--dir", tmp, "slimsam_77"]);
    assert.match(again.stderr, /slimsam_77 already installed/);
  });
});
