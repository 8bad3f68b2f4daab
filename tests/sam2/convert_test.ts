/**
 * SAM 2 conversion to wgsam safetensors: the converted file carries its whole architecture,
 * so it loads without hints, tensor for tensor as the .pt; a stored architecture that the
 * tensors contradict is refused; the convert CLI tells SAM 2 from SAM 1 by tensor names.
 */
import assert from "node:assert/strict";
import { convertSam2Checkpoint, loadSam2 } from "../../src/sam2/load.ts";
import { sam2HintsFromFixture } from "../../src/sam2/arch.ts";
import { SafetensorsFile, writeSafetensors } from "../../src/weights/safetensors.ts";
import { withTempDir } from "../weights/helpers.ts";
import { sam2File, sam2Files, sam2FixtureJson } from "./fixture_files.ts";

Deno.test("convertSam2Checkpoint: the safetensors loads without hints, same arch and bytes", async () => {
  const urls = sam2Files("sam2-tiny", ["sam2-tiny.pt", "fixture.json"], "sam2 convert");
  if (!urls) return;
  const hints = sam2HintsFromFixture((await sam2FixtureJson("sam2-tiny")).architecture);
  const pt = urls[0].pathname;
  await withTempDir(async (dir) => {
    const out = `${dir}/sam2-tiny.safetensors`;
    const arch = await convertSam2Checkpoint(pt, out, hints);
    const original = await loadSam2(pt, hints);
    assert.deepEqual(arch, original.arch);
    const converted = await loadSam2(out); // no hints: the stored arch supplies them
    assert.deepEqual(converted.arch, original.arch);
    assert.deepEqual([...converted.sd.keys()], [...original.sd.keys()]);
    for (const [name, t] of original.sd) {
      assert.deepEqual(converted.sd.get(name)!.bytes, t.bytes, name);
    }
    // Explicit hints still win (another image size for the same weights).
    assert.equal((await loadSam2(out, { imgSize: 512 })).arch.imgSize, 512);
    // Converting onto the input is refused before anything is written.
    await assert.rejects(convertSam2Checkpoint(out, out), /is the input checkpoint/);

    // A stored architecture the tensors contradict is refused.
    const st = await SafetensorsFile.open(out);
    const stored = JSON.parse(st.metadata.wgsam_arch);
    stored.trunk.mlpRatio = 3;
    const forged = `${dir}/forged.safetensors`;
    try {
      await writeSafetensors(forged, st.tensors, {
        ...st.metadata,
        wgsam_arch: JSON.stringify(stored),
      });
    } finally {
      st.close();
    }
    await assert.rejects(loadSam2(forged), /stored architecture .* disagrees with the tensors/);
    // Stored metadata that is not a SAM 2 architecture at all: a clear error, not a TypeError.
    for (const junk of ["null", "[1]", '{"family":"sam2"}', '{"family":"sam"}', "7"]) {
      const path = `${dir}/junk.safetensors`;
      const src = await SafetensorsFile.open(out);
      try {
        await writeSafetensors(path, src.tensors, { ...src.metadata, wgsam_arch: junk });
      } finally {
        src.close();
      }
      await assert.rejects(loadSam2(path), /wgsam_arch is not a SAM 2 architecture/, junk);
    }
  });
});

Deno.test("convert CLI on a SAM 2 .pt: a non-official size without hints exits 1 saying why", async () => {
  const pt = sam2File("sam2-tiny", "sam2-tiny.pt");
  if (!sam2Files("sam2-tiny", ["sam2-tiny.pt"], "sam2 convert CLI")) return;
  await withTempDir(async (dir) => {
    const cli = new URL("../../src/weights/convert_cli.ts", import.meta.url).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-write", cli, pt!.pathname, `${dir}/o.safetensors`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1, stderr);
    assert.match(
      stderr,
      /convert: error: SAM 2 checkpoint \(Hiera width 16, stages \[1,2,3,2\]\) matches no official/,
    );
    await assert.rejects(Deno.stat(`${dir}/o.safetensors`), Deno.errors.NotFound);
  });
});
