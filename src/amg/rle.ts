/**
 * Run-length encodings of binary masks, as SAM's automatic mask generator and COCO use them.
 *
 * Uncompressed RLE: `counts` are run lengths over the mask read in column-major (Fortran)
 * order, alternating zeros and ones and always starting with a run of zeros (of length 0
 * when the first pixel is set). Compressed ("coco") RLE: the same counts written as
 * pycocotools' `rleToString` does (see `countsToCocoString`).
 *
 * Masks in this module are row-major `Uint8Array`s of 0/1, `height * width` long.
 */

export interface UncompressedRle {
  /** [height, width] */
  size: [number, number];
  counts: number[];
}

export interface CocoRle {
  /** [height, width] */
  size: [number, number];
  counts: string;
}

/** Accumulates alternating runs (zeros first), merging consecutive runs of the same value. */
class RunWriter {
  readonly counts: number[] = [];
  private value = 0;
  private length = 0;

  push(value: number, length: number): void {
    if (length <= 0) return;
    if (value !== this.value) {
      this.counts.push(this.length);
      this.value = value;
      this.length = 0;
    }
    this.length += length;
  }

  finish(): number[] {
    this.counts.push(this.length);
    return this.counts;
  }
}

/** Encodes a row-major binary mask (H x W) as an uncompressed RLE. */
export function maskToRle(mask: Uint8Array, height: number, width: number): UncompressedRle {
  return maskToRleInFrame(mask, width, height, 0, 0, width, height);
}

/**
 * Encodes a mask given at a crop's size (cropH x cropW, row-major) as the RLE of the mask
 * placed at (x0, y0) in a frameH x frameW frame of zeros: what SAM gets by padding the crop's
 * mask to the image (`uncrop_masks`) and encoding it, without building the padded mask.
 */
export function maskToRleInFrame(
  mask: Uint8Array,
  cropW: number,
  cropH: number,
  x0: number,
  y0: number,
  frameW: number,
  frameH: number,
): UncompressedRle {
  if (mask.length !== cropW * cropH) {
    throw new Error(`maskToRle: mask has ${mask.length} pixels, expected ${cropH}x${cropW}`);
  }
  if (x0 < 0 || y0 < 0 || x0 + cropW > frameW || y0 + cropH > frameH) {
    throw new Error(
      `maskToRle: crop ${cropW}x${cropH} at (${x0}, ${y0}) leaves the ${frameW}x${frameH} frame`,
    );
  }
  const out = new RunWriter();
  out.push(0, x0 * frameH);
  for (let x = 0; x < cropW; x++) {
    out.push(0, y0);
    let y = 0;
    while (y < cropH) {
      const v = mask[y * cropW + x] ? 1 : 0;
      const start = y;
      while (y < cropH && (mask[y * cropW + x] ? 1 : 0) === v) y++;
      out.push(v, y - start);
    }
    out.push(0, frameH - y0 - cropH);
  }
  out.push(0, (frameW - x0 - cropW) * frameH);
  return { size: [frameH, frameW], counts: out.finish() };
}

/** Decodes an uncompressed RLE to a row-major binary mask (H x W). */
export function rleToMask(rle: UncompressedRle): Uint8Array {
  const [h, w] = rle.size;
  const total = h * w;
  const mask = new Uint8Array(total);
  let idx = 0; // column-major position
  let value = 0;
  for (const count of rle.counts) {
    if (idx + count > total) throw new Error(`rleToMask: counts exceed ${h}x${w} pixels`);
    if (value) {
      for (let k = idx; k < idx + count; k++) {
        const x = Math.floor(k / h), y = k - x * h;
        mask[y * w + x] = 1;
      }
    }
    idx += count;
    value ^= 1;
  }
  if (idx !== total) throw new Error(`rleToMask: counts cover ${idx} of ${total} pixels`);
  return mask;
}

/** Pixels set in the mask: the sum of the runs of ones. */
export function areaFromRle(rle: UncompressedRle): number {
  let area = 0;
  for (let i = 1; i < rle.counts.length; i += 2) area += rle.counts[i];
  return area;
}

/**
 * pycocotools' compressed string form of RLE counts (cocoapi `rleToString`). Each count,
 * after the first two replaced by its difference from the count two places before (the run
 * of the same value), is written as a signed number in 5-bit groups, least significant
 * first; each group becomes one character: group | 0x20 when more groups follow, plus 48.
 * Writing stops once the remaining value is 0 (or -1 for a negative number) and the sign
 * bit 0x10 of the last group agrees with it.
 */
export function countsToCocoString(counts: readonly number[]): string {
  const chars: number[] = []; // ASCII codes 48..111
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i];
    if (i > 2) x -= counts[i - 2];
    let more = true;
    while (more) {
      const group = x - Math.floor(x / 32) * 32; // x & 0x1f, for any sign
      x = Math.floor(x / 32); // arithmetic shift right by 5
      more = (group & 0x10) ? x !== -1 : x !== 0;
      chars.push((more ? group | 0x20 : group) + 48);
    }
  }
  return new TextDecoder().decode(Uint8Array.from(chars));
}

/** Inverse of `countsToCocoString` (cocoapi `rleFrString`). */
export function cocoStringToCounts(s: string): number[] {
  const counts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, scale = 1, more = true, group = 0;
    while (more) {
      if (p >= s.length) throw new Error("cocoStringToCounts: string ends inside a number");
      group = s.charCodeAt(p++) - 48;
      if (group < 0 || group > 63) throw new Error(`cocoStringToCounts: bad character`);
      x += (group & 0x1f) * scale;
      scale *= 32;
      more = (group & 0x20) !== 0;
    }
    if (group & 0x10) x -= scale; // sign-extend from the last group's 0x10 bit
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

/** SAM's `coco_encode_rle`: the uncompressed RLE in pycocotools' compressed form. */
export function cocoEncodeRle(rle: UncompressedRle): CocoRle {
  return { size: [rle.size[0], rle.size[1]], counts: countsToCocoString(rle.counts) };
}

/** Decodes a compressed RLE back to the uncompressed form. */
export function cocoDecodeRle(rle: CocoRle): UncompressedRle {
  return { size: [rle.size[0], rle.size[1]], counts: cocoStringToCounts(rle.counts) };
}
