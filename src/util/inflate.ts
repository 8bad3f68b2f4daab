/**
 * Inflating compressed data whose size is known in advance (a zip entry's declared size, a
 * PNG's image data from its header) into one buffer of that size, stopped as soon as the data
 * runs past it: a zip bomb costs at most the size it admits to.
 */

/** Why an inflate failed: past the size, shorter than it, or not valid compressed data. */
export class InflateError extends Error {
  constructor(
    readonly kind: "overflow" | "short" | "corrupt",
    message: string,
    /** Bytes inflated before the failure ("short": all there were). */
    readonly filled: number,
  ) {
    super(message);
    this.name = "InflateError";
  }
}

/**
 * Inflates the concatenated `parts` ("deflate": zlib, as PNG's IDAT; "deflate-raw": as zip
 * entries) into exactly `size` bytes, or throws an InflateError.
 */
export async function inflateExactly(
  parts: Uint8Array[],
  format: "deflate" | "deflate-raw",
  size: number,
): Promise<Uint8Array> {
  const stream = new Blob(parts as Uint8Array<ArrayBuffer>[]).stream()
    .pipeThrough(new DecompressionStream(format));
  const reader = stream.getReader();
  const out = new Uint8Array(size);
  let filled = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (filled + value.length > size) {
        throw new InflateError("overflow", `inflates past ${size} bytes`, filled);
      }
      out.set(value, filled);
      filled += value.length;
    }
  } catch (e) {
    await reader.cancel().catch(() => {});
    if (e instanceof InflateError) throw e;
    throw new InflateError("corrupt", `corrupt deflate data (${(e as Error).message})`, filled);
  }
  if (filled !== size) {
    throw new InflateError("short", `inflated to ${filled} bytes, expected ${size}`, filled);
  }
  return out;
}
