/**
 * The geometric and per-mask helpers of SAM's automatic mask generator (the official
 * `segment_anything/utils/amg.py`), on typed arrays. Boxes are XYXY; a mask's box holds the
 * inclusive pixel indices of its extreme set pixels, as `batched_mask_to_box` gives them.
 * Masks are row-major (H x W); logits are float32.
 */

/** [x0, y0, x1, y1] (or [x, y, w, h] where named XYWH). */
export type Box = [number, number, number, number];

/** Evenly spaced points in [0,1]^2, (n*n, 2) as x,y pairs, x varying fastest. */
export function buildPointGrid(nPerSide: number): Float64Array {
  const offset = 1 / (2 * nPerSide);
  const oneSide = linspace(offset, 1 - offset, nPerSide);
  const points = new Float64Array(nPerSide * nPerSide * 2);
  for (let row = 0; row < nPerSide; row++) {
    for (let col = 0; col < nPerSide; col++) {
      const i = row * nPerSide + col;
      points[2 * i] = oneSide[col];
      points[2 * i + 1] = oneSide[row];
    }
  }
  return points;
}

/** numpy.linspace(start, stop, num) with its rounding: start + i * step, the last set to stop. */
function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  const div = num - 1;
  const step = (stop - start) / div;
  for (let i = 0; i < num; i++) out[i] = div > 0 ? i * step + start : start;
  if (num > 1) out[num - 1] = stop;
  return out;
}

/** One grid per crop layer; layer i has trunc(nPerSide / scalePerLayer**i) points a side. */
export function buildAllLayerPointGrids(
  nPerSide: number,
  nLayers: number,
  scalePerLayer: number,
): Float64Array[] {
  const grids: Float64Array[] = [];
  for (let i = 0; i <= nLayers; i++) {
    grids.push(buildPointGrid(Math.trunc(nPerSide / scalePerLayer ** i)));
  }
  return grids;
}

export interface CropBoxes {
  /** XYXY crop boxes: the whole image first, then layer by layer. */
  boxes: Box[];
  /** The crop layer of each box (0 for the whole image). */
  layerIdxs: number[];
}

/**
 * Crop boxes of an imH x imW image: the image, then for layer i (1-based) a 2^i x 2^i grid of
 * overlapping crops, x0 outer and y0 inner as the official `itertools.product` order.
 *
 * One departure from the official `generate_crop_boxes`: on a very small image (a side near or
 * below 2^i px), the grid's last crops start at or past the image's edge and would be empty
 * (0 px wide or high, e.g. 64x3 at two layers); those are left out, so the generator runs on
 * the crops that exist. Every other box is exactly the official one, in the official order.
 */
export function generateCropBoxes(
  imH: number,
  imW: number,
  nLayers: number,
  overlapRatio: number,
): CropBoxes {
  const boxes: Box[] = [[0, 0, imW, imH]];
  const layerIdxs = [0];
  const shortSide = Math.min(imH, imW);
  const cropLen = (origLen: number, nCrops: number, overlap: number) =>
    Math.ceil((overlap * (nCrops - 1) + origLen) / nCrops);
  for (let layer = 0; layer < nLayers; layer++) {
    const nPerSide = 2 ** (layer + 1);
    const overlap = Math.trunc(overlapRatio * shortSide * (2 / nPerSide));
    const cropW = cropLen(imW, nPerSide, overlap);
    const cropH = cropLen(imH, nPerSide, overlap);
    const x0s = Array.from({ length: nPerSide }, (_, i) => Math.trunc((cropW - overlap) * i));
    const y0s = Array.from({ length: nPerSide }, (_, i) => Math.trunc((cropH - overlap) * i));
    for (const x0 of x0s) {
      for (const y0 of y0s) {
        const x1 = Math.min(x0 + cropW, imW), y1 = Math.min(y0 + cropH, imH);
        if (x1 <= x0 || y1 <= y0) continue; // empty: past the edge of a very small image
        boxes.push([x0, y0, x1, y1]);
        layerIdxs.push(layer + 1);
      }
    }
  }
  return { boxes, layerIdxs };
}

/**
 * The number of pixels of one row-major map whose value is above `threshold`, summed as the
 * official does: per row into an int16 (wrapping as torch's would past 32767), then int32.
 */
function countAbove(
  logits: Float32Array,
  offset: number,
  height: number,
  width: number,
  threshold: number,
): number {
  let total = 0;
  for (let y = 0; y < height; y++) {
    let row = 0;
    const base = offset + y * width;
    for (let x = 0; x < width; x++) if (logits[base + x] > threshold) row++;
    total = (total + ((row << 16) >> 16)) | 0;
  }
  return total;
}

/**
 * Stability score of each of n logit maps (n, H, W): the IoU of the masks thresholded at
 * maskThreshold + offset and maskThreshold - offset, i.e. count(> hi) / count(> lo) as
 * float32. Thresholds are cast to float32 as torch does when comparing a float32 tensor
 * with a Python float. An empty union gives NaN, as 0/0 in torch.
 */
export function calculateStabilityScore(
  masks: Float32Array,
  n: number,
  height: number,
  width: number,
  maskThreshold: number,
  thresholdOffset: number,
): Float32Array {
  if (masks.length < n * height * width) {
    throw new Error(`stability: ${masks.length} values for ${n} masks of ${height}x${width}`);
  }
  const hi = Math.fround(maskThreshold + thresholdOffset);
  const lo = Math.fround(maskThreshold - thresholdOffset);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const off = i * height * width;
    out[i] = countAbove(masks, off, height, width, hi) / countAbove(masks, off, height, width, lo);
  }
  return out;
}

export interface LogitMaskStats {
  /** float32 stability score (see calculateStabilityScore). */
  stability: number;
  /** XYXY box of logits > maskThreshold, [0,0,0,0] when empty. */
  box: Box;
}

/**
 * Stability score and box of one logit map in a single pass: what the generator needs of a
 * mask before deciding to keep it.
 */
export function logitMaskStats(
  logits: Float32Array,
  offset: number,
  height: number,
  width: number,
  maskThreshold: number,
  thresholdOffset: number,
): LogitMaskStats {
  const hi = Math.fround(maskThreshold + thresholdOffset);
  const lo = Math.fround(maskThreshold - thresholdOffset);
  const thr = Math.fround(maskThreshold);
  let inter = 0, union = 0;
  let left = width, right = -1, top = height, bottom = -1;
  for (let y = 0; y < height; y++) {
    let rowHi = 0, rowLo = 0, rowLeft = width, rowRight = -1;
    const base = offset + y * width;
    for (let x = 0; x < width; x++) {
      const v = logits[base + x];
      if (v > lo) rowLo++;
      if (v > hi) rowHi++;
      if (v > thr) {
        if (x < rowLeft) rowLeft = x;
        rowRight = x;
      }
    }
    inter = (inter + ((rowHi << 16) >> 16)) | 0;
    union = (union + ((rowLo << 16) >> 16)) | 0;
    if (rowRight >= 0) {
      if (top === height) top = y;
      bottom = y;
      if (rowLeft < left) left = rowLeft;
      if (rowRight > right) right = rowRight;
    }
  }
  const box: Box = right >= 0 ? [left, top, right, bottom] : [0, 0, 0, 0];
  return { stability: Math.fround(inter / union), box };
}

/** `logits > threshold` (threshold cast to float32) as a 0/1 mask. */
export function thresholdMask(
  logits: Float32Array,
  offset: number,
  size: number,
  maskThreshold: number,
): Uint8Array {
  const thr = Math.fround(maskThreshold);
  const mask = new Uint8Array(size);
  for (let i = 0; i < size; i++) mask[i] = logits[offset + i] > thr ? 1 : 0;
  return mask;
}

/** XYXY box (inclusive extreme pixels) of a row-major mask; [0,0,0,0] when empty. */
export function maskToBox(mask: Uint8Array, height: number, width: number, offset = 0): Box {
  let left = width, right = -1, top = height, bottom = -1;
  for (let y = 0; y < height; y++) {
    const base = offset + y * width;
    let x = 0;
    while (x < width && !mask[base + x]) x++;
    if (x === width) continue;
    if (top === height) top = y;
    bottom = y;
    if (x < left) left = x;
    let xr = width - 1;
    while (!mask[base + xr]) xr--;
    if (xr > right) right = xr;
  }
  return right >= 0 ? [left, top, right, bottom] : [0, 0, 0, 0];
}

/** Boxes of n masks (n, H, W) as (n, 4) XYXY; empty masks give [0,0,0,0]. */
export function batchedMaskToBox(
  masks: Uint8Array,
  n: number,
  height: number,
  width: number,
): Int32Array {
  const out = new Int32Array(n * 4);
  for (let i = 0; i < n; i++) out.set(maskToBox(masks, height, width, i * height * width), i * 4);
  return out;
}

/**
 * Whether a box (in the crop's frame) lies within atol of an edge of its crop that is not
 * also (within atol) an edge of the original image.
 */
export function isBoxNearCropEdge(
  box: readonly number[],
  cropBox: readonly number[],
  origBox: readonly number[],
  atol = 20,
): boolean {
  const uncropped = uncropBox(box, cropBox);
  for (let k = 0; k < 4; k++) {
    const nearCrop = Math.abs(uncropped[k] - cropBox[k]) <= atol;
    const nearImage = Math.abs(uncropped[k] - origBox[k]) <= atol;
    if (nearCrop && !nearImage) return true;
  }
  return false;
}

/** XYXY box from a crop's frame to the image's. */
export function uncropBox(box: readonly number[], cropBox: readonly number[]): Box {
  const [x0, y0] = cropBox;
  return [box[0] + x0, box[1] + y0, box[2] + x0, box[3] + y0];
}

/** (x, y) from a crop's frame to the image's. */
export function uncropPoint(point: readonly number[], cropBox: readonly number[]): [
  number,
  number,
] {
  return [point[0] + cropBox[0], point[1] + cropBox[1]];
}

/**
 * A crop-sized mask (cropH x cropW at cropBox's corner) padded with zeros to origH x origW.
 * The generator avoids this (it encodes RLE straight from the crop, `maskToRleInFrame`).
 */
export function uncropMask(
  mask: Uint8Array,
  cropBox: readonly number[],
  origH: number,
  origW: number,
): Uint8Array {
  const [x0, y0, x1, y1] = cropBox;
  const cw = x1 - x0, ch = y1 - y0;
  if (x0 === 0 && y0 === 0 && x1 === origW && y1 === origH) return mask;
  const out = new Uint8Array(origH * origW);
  for (let y = 0; y < ch; y++) {
    out.set(mask.subarray(y * cw, (y + 1) * cw), (y + y0) * origW + x0);
  }
  return out;
}

export function boxXyxyToXywh(box: readonly number[]): Box {
  return [box[0], box[1], box[2] - box[0], box[3] - box[1]];
}

/** torchvision `box_area`: (x1 - x0) * (y1 - y0). */
export function boxArea(box: readonly number[]): number {
  return (box[2] - box[0]) * (box[3] - box[1]);
}
