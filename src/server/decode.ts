/**
 * PNG/JPEG bytes to RGB pixels with imagescript, refusing decompression bombs: the size is read
 * from the PNG IHDR chunk or the JPEG SOF segment and checked against the pixel limit before
 * any pixel is decoded.
 */
import { Image } from "imagescript";
import type { RgbImage } from "../types.ts";
import { HttpError } from "./errors.ts";

export interface ImageHeader {
  format: "png" | "jpeg";
  width: number;
  height: number;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Format and size from the header; null when the bytes are neither PNG nor JPEG or are cut short. */
export function readImageHeader(bytes: Uint8Array): ImageHeader | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length >= 24 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    // The first chunk must be IHDR: length (4), "IHDR", width (4), height (4), big-endian.
    const isIhdr = bytes[12] === 0x49 && bytes[13] === 0x48 && bytes[14] === 0x44 &&
      bytes[15] === 0x52;
    if (!isIhdr) return null;
    return { format: "png", width: view.getUint32(16), height: view.getUint32(20) };
  }
  if (bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8) {
    // Walk the marker segments up to the first start-of-frame.
    let i = 2;
    while (i + 4 <= bytes.length) {
      if (bytes[i] !== 0xff) return null;
      const marker = bytes[i + 1];
      if (marker === 0xff) {
        i++; // fill byte
        continue;
      }
      if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
        i += 2; // markers without a length
        continue;
      }
      if (marker === 0xd9 || marker === 0xda) return null; // end of image / scan before a frame
      const length = view.getUint16(i + 2);
      if (length < 2) return null;
      const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 &&
        marker !== 0xcc;
      if (isSof) {
        if (i + 9 > bytes.length) return null;
        return { format: "jpeg", height: view.getUint16(i + 5), width: view.getUint16(i + 7) };
      }
      i += 2 + length;
    }
  }
  return null;
}

/** Decodes to 3-channel RGB (alpha dropped), or throws an HttpError 400/413. */
export async function decodeImageLimited(
  bytes: Uint8Array,
  limits: { maxPixels: number; maxSide: number },
): Promise<RgbImage> {
  if (bytes.length === 0) throw new HttpError(400, "empty image body");
  const header = readImageHeader(bytes);
  if (!header) throw new HttpError(400, "undecodable image: not a PNG or JPEG");
  const { width, height } = header;
  if (width === 0 || height === 0) throw new HttpError(400, `image has size ${width}x${height}`);
  if (width > limits.maxSide || height > limits.maxSide || width * height > limits.maxPixels) {
    throw new HttpError(
      413,
      `image of ${width}x${height} pixels is over the limit (${limits.maxPixels} pixels, ` +
        `${limits.maxSide} a side)`,
    );
  }
  let image: Image;
  try {
    image = await Image.decode(bytes) as Image;
  } catch (e) {
    throw new HttpError(400, `undecodable ${header.format}: ${(e as Error)?.message ?? e}`);
  }
  if (!(image instanceof Image) || image.width !== width || image.height !== height) {
    throw new HttpError(400, `undecodable ${header.format}: size differs from its header`);
  }
  const rgba = image.bitmap;
  const data = new Uint8Array(width * height * 3);
  for (let p = 0, q = 0; q < data.length; p += 4, q += 3) {
    data[q] = rgba[p];
    data[q + 1] = rgba[p + 1];
    data[q + 2] = rgba[p + 2];
  }
  return { width, height, channels: 3, data };
}
