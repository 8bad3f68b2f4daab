/**
 * Uploaded PNG/JPEG bytes to RGB pixels through the shared decoder (src/image.ts), with the
 * server's status codes: an image over the size limits is a 413, judged from its header before
 * any pixel is decoded (decompression bombs); anything undecodable is a 400.
 */
import { decodeImage, ImageDecodeError, peekImageSize } from "../image.ts";
import type { RgbImage } from "../types.ts";
import { HttpError } from "./errors.ts";

export async function decodeUpload(
  bytes: Uint8Array,
  limits: { maxPixels: number; maxSide: number },
): Promise<RgbImage> {
  if (bytes.length === 0) throw new HttpError(400, "empty image body");
  try {
    const header = peekImageSize(bytes);
    if (!header) throw new HttpError(400, "undecodable image: not a PNG or JPEG");
    const { width, height } = header;
    if (width > limits.maxSide || height > limits.maxSide || width * height > limits.maxPixels) {
      throw new HttpError(
        413,
        `image of ${width}x${height} pixels is over the limit (${limits.maxPixels} pixels, ` +
          `${limits.maxSide} a side)`,
      );
    }
    return await decodeImage(bytes, { maxPixels: limits.maxPixels });
  } catch (e) {
    if (e instanceof ImageDecodeError) throw new HttpError(400, `undecodable image: ${e.message}`);
    throw e;
  }
}
