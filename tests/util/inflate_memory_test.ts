/**
 * Decompression bombs cost memory near the size they declare, not the size they inflate to:
 * a 64x48 PNG and a checkpoint's data.pkl whose data inflates to 512 MiB are refused with the
 * peak memory of the process growing by far less (it grew ~1 GB when the inflater was handed
 * the whole input at once).
 */
import assert from "node:assert/strict";
import { crc32 } from "../../src/weights/zip.ts";
import {
  buildZip,
  deflateZeros,
  stateDictPickle,
  withTempDir,
  writeTemp,
} from "../weights/helpers.ts";
import { runDeno } from "./run_deno.ts";

const BOMB_BYTES = 512 << 20;
/** Allowed growth of the peak: the declared sizes are tiny, the rest is slack for the runtime. */
const MAX_GROWTH = 128 << 20;
const PROBE = new URL("./bomb_memory_probe.ts", import.meta.url);

function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** A 64x48 RGB PNG (9,456 bytes of image data by its header) whose IDAT inflates to `idat`. */
function bombPng(idat: Uint8Array): Uint8Array {
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, 64);
  view.setUint32(4, 48);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", idat),
    pngChunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function probe(kind: "png" | "pth", path: string) {
  // Reading /proc/self/status takes --allow-all.
  const run = await runDeno(PROBE, [kind, path], { permissions: ["--allow-all"] });
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as { error: string; grewBytes: number };
}

Deno.test({
  name: "a PNG and a checkpoint whose data inflates to 512 MiB are refused in bounded memory",
  ignore: Deno.build.os !== "linux", // VmHWM is Linux's
  fn: async () => {
    await withTempDir(async (dir) => {
      const png = bombPng(await deflateZeros(BOMB_BYTES, "deflate"));
      const pngResult = await probe("png", await writeTemp(dir, "bomb.png", png));
      assert.match(pngResult.error, /could not be decoded/);
      assert.ok(
        pngResult.grewBytes < MAX_GROWTH,
        `PNG bomb: peak memory grew by ${pngResult.grewBytes} bytes`,
      );

      // data.pkl declares its real (small) size; its deflated data goes on for 512 MiB.
      const pickle = stateDictPickle([]);
      const zip = await buildZip([{
        name: "archive/data.pkl",
        data: pickle,
        method: 8,
        compressed: await deflateZeros(BOMB_BYTES, "deflate-raw"),
      }]);
      const pthResult = await probe("pth", await writeTemp(dir, "bomb.pth", zip));
      assert.match(pthResult.error, /entry 'archive\/data\.pkl' inflates past its declared/);
      assert.ok(
        pthResult.grewBytes < MAX_GROWTH,
        `data.pkl bomb: peak memory grew by ${pthResult.grewBytes} bytes`,
      );
    });
  },
});
