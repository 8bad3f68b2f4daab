/**
 * Uploaded PNG/JPEG bytes to RGB pixels through the shared decoder (src/image.ts), with the
 * server's status codes: an image over the size limits is a 413, judged from its header before
 * any pixel is decoded (decompression bombs); anything undecodable is a 400, and so is an image
 * too thin for the model (its short side would be 0 px at the model's input size, `imgSize`),
 * also judged from the header, before any pixel or GPU work.
 */
import { getPreprocessShape } from "../encoder/preprocess.ts";
import { decodeImage, ImageDecodeError, peekImageSize } from "../image.ts";
import type { RgbImage } from "../types.ts";
import { HttpError } from "./errors.ts";

export async function decodeUpload(
  bytes: Uint8Array,
  limits: { maxPixels: number; maxSide: number; imgSize?: number },
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
    if (limits.imgSize !== undefined) checkModelShape(width, height, limits.imgSize);
    const image = await decodeImage(bytes, { maxPixels: limits.maxPixels });
    // The header's size should be the decoded one; judged again on what was decoded.
    if (limits.imgSize !== undefined) checkModelShape(image.width, image.height, limits.imgSize);
    return image;
  } catch (e) {
    if (e instanceof ImageDecodeError) throw new HttpError(400, `undecodable image: ${e.message}`);
    throw e;
  }
}

/** A 400 for an image the model cannot take (ResizeLongestSide would make a side 0 px). */
function checkModelShape(width: number, height: number, imgSize: number): void {
  try {
    getPreprocessShape(height, width, imgSize);
  } catch (e) {
    if (e instanceof RangeError) throw new HttpError(400, e.message);
    throw e;
  }
}
