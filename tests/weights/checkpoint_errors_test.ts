/**
 * A wrong file given as a checkpoint is named in a user's words: what the file is not, and what
 * wgsam reads; the reader's own detail stays at the end.
 */
import assert from "node:assert/strict";
import { convertCheckpoint, loadSam } from "../../src/weights/load.ts";
import { writeSafetensors } from "../../src/weights/safetensors.ts";
import { buildZip, withTempDir, writeTemp } from "./helpers.ts";

const ACCEPTED = /wgsam reads Segment Anything checkpoints/;

Deno.test("checkpoint errors: a zip that is no torch checkpoint, a non-SAM safetensors", async () => {
  await withTempDir(async (dir) => {
    const text = new TextEncoder().encode("not a pickle at all");
    const plain = await writeTemp(
      dir,
      "photos.zip",
      await buildZip([{ name: "a.txt", data: text }]),
    );
    for (const load of [loadSam, (p: string) => convertCheckpoint(p, `${dir}/o.safetensors`)]) {
      await assert.rejects(load(plain), (e: Error) => {
        assert.match(e.message, /photos\.zip is a zip file but not a PyTorch checkpoint/);
        assert.match(e.message, ACCEPTED);
        return true;
      });
    }
    // Has a data.pkl, but it is no pickle: once "pickle: unsupported opcode 0x6e at offset 0".
    const fake = await writeTemp(
      dir,
      "fake.pth",
      await buildZip([{ name: "archive/data.pkl", data: text }]),
    );
    await assert.rejects(loadSam(fake), (e: Error) => {
      assert.match(e.message, /^\S*fake\.pth is a zip file but not a PyTorch checkpoint wgsam/);
      assert.match(e.message, /\(its data\.pkl: pickle: /);
      return true;
    });
    // A safetensors file of another model: once "inferArch: no tensor ...".
    const other = `${dir}/resnet.safetensors`;
    await writeSafetensors(other, [{
      name: "fc.weight",
      dtype: "float32",
      shape: [2, 2],
      bytes: new Uint8Array(16),
    }], {});
    await assert.rejects(loadSam(other), (e: Error) => {
      assert.match(
        e.message,
        /resnet\.safetensors is not a SAM checkpoint \(no tensor 'image_encoder\.pos_embed'\)/,
      );
      assert.doesNotMatch(e.message, /inferArch/);
      assert.match(e.message, ACCEPTED);
      return true;
    });
    await assert.rejects(Deno.stat(`${dir}/o.safetensors`), Deno.errors.NotFound);
  });
});
