/**
 * Inflating compressed data whose size is known in advance (a zip entry's declared size, a
 * PNG's image data from its header) into one buffer of that size, stopped as soon as the data
 * runs past it: a zip bomb costs at most the size it admits to.
 *
 * The inflater turns each input chunk it is handed into one output chunk, whatever its size
 * (1 MB of a bomb inflates to 1 GiB at once), so the input goes in slices of
 * INFLATE_INPUT_SLICE bytes, each written only once the previous output has been taken: memory
 * stays within the declared size plus a few slices' worth of output.
 */

/** Compressed bytes handed to the inflater at a time. Deflate expands at most ~1032x, so no
 * output chunk exceeds ~8.5 MB. */
export const INFLATE_INPUT_SLICE = 8 << 10;

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

/** Writes `parts` into the inflater slice by slice, each after the previous was taken in. */
async function feed(writer: WritableStreamDefaultWriter<BufferSource>, parts: Uint8Array[]) {
  for (const part of parts) {
    for (let at = 0; at < part.length; at += INFLATE_INPUT_SLICE) {
      await writer.ready;
      // Its failure (corrupt data, or the reader giving up) reaches the reader as well.
      writer.write(part.subarray(at, at + INFLATE_INPUT_SLICE) as Uint8Array<ArrayBuffer>).catch(
        () => {},
      );
    }
  }
  await writer.close();
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
  const inflater = new DecompressionStream(format);
  const writer = inflater.writable.getWriter();
  const reader = inflater.readable.getReader();
  const feeding = feed(writer, parts).catch(() => {});
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
    await feeding;
    if (e instanceof InflateError) throw e;
    throw new InflateError("corrupt", `corrupt deflate data (${(e as Error).message})`, filled);
  }
  await feeding;
  if (filled !== size) {
    throw new InflateError("short", `inflated to ${filled} bytes, expected ${size}`, filled);
  }
  return out;
}
