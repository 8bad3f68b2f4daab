/**
 * A small PNG writer for binary masks: 8-bit greyscale, 0 or 255, deflated with the platform's
 * CompressionStream ("deflate" is the zlib format PNG's IDAT wants). The server keeps it
 * rather than src/image.ts's `encodeMaskPng` (RGBA through imagescript): for a 1800 x 1200
 * mask it is 5x faster (270 vs 1400 ms, measured on a 2-core machine) and its PNG 2.4x smaller.
 */
import { crc32 } from "../weights/zip.ts";

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

async function deflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** PNG of a row-major 0/1 mask (height x width): white where set, black elsewhere. */
export async function encodeMaskPng(mask: Uint8Array, width: number, height: number) {
  if (mask.length !== width * height) {
    throw new Error(`mask has ${mask.length} pixels, expected ${height}x${width}`);
  }
  // Each scanline: filter type 0 (none), then the row.
  const raw = new Uint8Array(height * (width + 1));
  for (let y = 0; y < height; y++) {
    const row = y * (width + 1);
    for (let x = 0; x < width; x++) raw[row + 1 + x] = mask[y * width + x] ? 255 : 0;
  }
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", await deflate(raw)),
    chunk("IEND", new Uint8Array(0)),
  ];
  return new Uint8Array(await new Blob(parts as Uint8Array<ArrayBuffer>[]).arrayBuffer());
}
