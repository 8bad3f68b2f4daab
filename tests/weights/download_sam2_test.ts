/**
 * A SAM 2.1 registry entry has neither a published size nor an MD5: the download takes the
 * server's Content-Length, prints the MD5 it computed (not verified) and converts the .pt
 * with convertSam2Checkpoint (the entry's hints travel into the safetensors metadata).
 */
import assert from "node:assert/strict";
import { downloadModel } from "../../src/weights/download.ts";
import { getModel, type ModelEntry } from "../../src/weights/registry.ts";
import { loadSam2 } from "../../src/sam2/load.ts";
import { fixtureDir } from "../util/fixtures.ts";
import { withTempDir } from "./helpers.ts";
import { startServer } from "./download_server.ts";

Deno.test("download of an entry without size or MD5 (SAM 2.1): Content-Length, MD5 noted, SAM 2 conversion", async () => {
  const bytes = await Deno.readFile(new URL("sam2-tiny.pt", fixtureDir("sam2-tiny")!));
  const entry: ModelEntry = {
    name: "sam2-test",
    description: "SAM 2 test checkpoint without a published size or digest",
    fileName: "sam2_test.pt",
    sam2Hints: getModel("sam2-tiny").sam2Hints,
  };
  const server = startServer({ files: { [`/mirror/${entry.fileName}`]: bytes } });
  try {
    await withTempDir(async (dir) => {
      const notes: string[] = [];
      const result = await downloadModel(entry, {
        weightsDir: dir,
        baseUrl: `${server.url}/mirror`,
        onNote: (n) => notes.push(n),
      });
      assert.equal(result.bytesDownloaded, bytes.length);
      assert.equal((await Deno.stat(result.checkpoint)).size, bytes.length);
      assert.ok(
        notes.some((n) => /MD5 cc7ea58ec486032a658e2a31a3d466cb \(not verified/.test(n)),
        notes.join("; "),
      );
      // The converted file carries the arch: it loads without hints.
      const { arch } = await loadSam2(result.safetensors);
      assert.equal(arch.imgSize, 256);
      assert.equal(result.converted, true);
    });
  } finally {
    await server.close();
  }
});
