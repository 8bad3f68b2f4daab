/**
 * Removal of small holes and islands from a binary mask (the official `remove_small_regions`,
 * which uses OpenCV's `connectedComponentsWithStats` with 8-connectivity).
 */

export interface Components {
  /** Per pixel: 0 for background (zero pixels), else the 1-based component label. */
  labels: Int32Array;
  /** sizes[k] = pixel count of label k (sizes[0] is the background). */
  sizes: number[];
}

/**
 * 8-connected components of the nonzero pixels of a row-major mask. Labels are numbered as
 * OpenCV's block-based algorithms (BBDT, Spaghetti: the default for 8-connectivity) number
 * them: in the order in which each component is first met when the image is scanned in 2x2
 * blocks, block rows top to bottom and blocks left to right. (The order matters only where the
 * official picks the largest region and two are equally large.)
 */
export function connectedComponents8(mask: Uint8Array, height: number, width: number): Components {
  const labels = new Int32Array(height * width);
  let background = 0;
  for (let i = 0; i < mask.length; i++) if (!mask[i]) background++;
  const sizes = [background];
  const stack = new Int32Array(height * width);
  const flood = (start: number, label: number): number => {
    let size = 0, top = 0;
    labels[start] = label;
    stack[top++] = start;
    while (top > 0) {
      const p = stack[--top];
      size++;
      const y = Math.floor(p / width), x = p - y * width;
      for (let ny = Math.max(0, y - 1); ny <= Math.min(height - 1, y + 1); ny++) {
        for (let nx = Math.max(0, x - 1); nx <= Math.min(width - 1, x + 1); nx++) {
          const q = ny * width + nx;
          if (mask[q] && !labels[q]) {
            labels[q] = label;
            stack[top++] = q;
          }
        }
      }
    }
    return size;
  };
  for (let by = 0; by < height; by += 2) {
    for (let bx = 0; bx < width; bx += 2) {
      for (let y = by; y < Math.min(by + 2, height); y++) {
        for (let x = bx; x < Math.min(bx + 2, width); x++) {
          const p = y * width + x;
          if (mask[p] && !labels[p]) sizes.push(flood(p, sizes.length));
        }
      }
    }
  }
  return { labels, sizes };
}

export type RegionMode = "holes" | "islands";

/**
 * "holes": fills every 8-connected region of zeros smaller than areaThresh (the background
 * around the mask included, if small). "islands": removes every 8-connected region of ones
 * smaller than areaThresh, keeping the largest when all are small. Returns the new mask and
 * whether anything was small (the official reports "changed" whenever a small region exists).
 */
export function removeSmallRegions(
  mask: Uint8Array,
  height: number,
  width: number,
  areaThresh: number,
  mode: RegionMode,
): { mask: Uint8Array; changed: boolean } {
  const holes = mode === "holes";
  const working = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) working[i] = (mask[i] ? 1 : 0) ^ (holes ? 1 : 0);
  const { labels, sizes } = connectedComponents8(working, height, width);
  const nLabels = sizes.length;
  const small = new Uint8Array(nLabels);
  let anySmall = false;
  for (let k = 1; k < nLabels; k++) {
    if (sizes[k] < areaThresh) {
      small[k] = 1;
      anySmall = true;
    }
  }
  if (!anySmall) return { mask, changed: false };
  // keepLabel[k]: pixels of label k are set in the result.
  const keepLabel = new Uint8Array(nLabels);
  if (holes) {
    keepLabel[0] = 1; // label 0 of the inverted mask is the mask itself
    for (let k = 1; k < nLabels; k++) keepLabel[k] = small[k];
  } else {
    let anyKept = false;
    for (let k = 1; k < nLabels; k++) {
      keepLabel[k] = small[k] ? 0 : 1;
      anyKept ||= keepLabel[k] === 1;
    }
    if (!anyKept) {
      let largest = 1;
      for (let k = 2; k < nLabels; k++) if (sizes[k] > sizes[largest]) largest = k;
      keepLabel[largest] = 1;
    }
  }
  const out = new Uint8Array(mask.length);
  for (let i = 0; i < out.length; i++) out[i] = keepLabel[labels[i]];
  return { mask: out, changed: true };
}
