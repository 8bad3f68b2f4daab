import assert from "node:assert/strict";
import { InflateError, inflateExactly } from "../../src/util/inflate.ts";

async function compress(data: Uint8Array, format: "deflate" | "deflate-raw") {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream(format));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

Deno.test("inflateExactly: exact size, or a typed error past it, short of it, or corrupt", async () => {
  const data = new Uint8Array(5000).map((_, i) => (i * 31) % 251);
  for (const format of ["deflate", "deflate-raw"] as const) {
    const packed = await compress(data, format);
    // Split across parts, as PNG's IDAT chunks are.
    const parts = [packed.subarray(0, 7), packed.subarray(7)];
    assert.deepEqual(await inflateExactly(parts, format, data.length), data);
    const fail = async (size: number, bytes: Uint8Array[]) => {
      try {
        await inflateExactly(bytes, format, size);
      } catch (e) {
        assert.ok(e instanceof InflateError, String(e));
        return e;
      }
      assert.fail("no error");
    };
    const over = await fail(4000, parts);
    assert.equal(over.kind, "overflow");
    assert.ok(over.filled <= 4000);
    const short = await fail(6000, parts);
    assert.deepEqual([short.kind, short.filled], ["short", 5000]);
    const corrupt = await fail(5000, [new Uint8Array([0xff, 0xff, 0xff, 0xff])]);
    assert.equal(corrupt.kind, "corrupt");
    assert.match(corrupt.message, /corrupt deflate data/);
  }
});
